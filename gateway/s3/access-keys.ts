/**
 * S3 access keys: made and revoked through the admin API, checked by the
 * S3 API's signature verification. The secret is shown once, when the key
 * is made; the store keeps it sealed (secret-box.ts) and nothing logs it.
 *
 * `secretFor` caches what it read for a few seconds: a signed request needs
 * the secret on every call, and several gateways share the database, so a
 * revocation made on another gateway takes effect here within CACHE_MS (on
 * this gateway, at once).
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { AccessKeyRecord, S3MetadataStore } from '../../shared/s3-metadata.js';
import { openSecret, sealSecret, secretBoxKey } from './secret-box.js';

/** How long a secret (or its absence) read from the store is trusted. */
export const CACHE_MS = 10_000;
/** Entries kept at most: unknown ids are cached too, and a client can send many. */
const CACHE_ENTRIES = 10_000;

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const ID_PREFIX = 'TRV';
const ID_LENGTH = 20;
/** `TRV` + 17 uppercase letters and digits (about 88 random bits). */
export const ACCESS_KEY_ID = /^TRV[A-Z0-9]{17}$/;

/** A new access key id: uniform over the alphabet (randomInt, no modulo bias). */
export function newAccessKeyId(): string {
  let id = ID_PREFIX;
  while (id.length < ID_LENGTH) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}

/** 40 characters of base64, as AWS's secrets are (30 random bytes). */
export function newSecret(): string {
  return randomBytes(30).toString('base64');
}

/** An access key as the admin API shows it: never its secret. */
export type AccessKeyInfo = Omit<AccessKeyRecord, 'sealedSecret'>;

export interface AccessKeysDeps {
  store: Pick<
    S3MetadataStore,
    'createAccessKey' | 'getAccessKey' | 'listAccessKeys' | 'revokeAccessKey'
  >;
  clusterSecret: string;
  /** The clock (ms), for tests. */
  now?: () => number;
}

interface CacheEntry {
  secret: string | undefined;
  readAt: number;
}

export class AccessKeys {
  private readonly key: Buffer;
  private readonly now: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  /** Revocations made here so far: a read that saw one land meanwhile is not cached. */
  private revocations = 0;

  constructor(private readonly deps: AccessKeysDeps) {
    this.key = secretBoxKey(deps.clusterSecret);
    this.now = deps.now ?? Date.now;
  }

  /** Makes a key; the only time its secret is returned. */
  async create(name = ''): Promise<AccessKeyInfo & { secret: string }> {
    const id = newAccessKeyId();
    const secret = newSecret();
    const createdAt = this.now();
    await this.deps.store.createAccessKey({
      id,
      name,
      sealedSecret: sealSecret(this.key, id, secret),
      createdAt,
    });
    return { id, name, createdAt, revokedAt: null, secret };
  }

  /** Every key, revoked ones too, oldest first; no secrets. */
  async list(): Promise<AccessKeyInfo[]> {
    const keys = await this.deps.store.listAccessKeys();
    return keys.map(({ sealedSecret: _, ...info }) => info);
  }

  /** Revokes an active key; false when unknown or revoked already. */
  async revoke(id: string): Promise<boolean> {
    const revoked = await this.deps.store.revokeAccessKey(id, this.now());
    this.revocations++;
    this.cache.delete(id);
    return revoked;
  }

  /**
   * The plain secret of an active key, or undefined for an unknown or
   * revoked one. Throws SealedSecretError when the stored secret does not
   * open (the cluster secret changed): a configuration fault, not a bad key.
   */
  async secretFor(id: string): Promise<string | undefined> {
    const cached = this.cachedSecret(id);
    if (cached) return cached.secret;
    const revocations = this.revocations;
    const record = await this.deps.store.getAccessKey(id);
    const secret =
      record?.sealedSecret && record.revokedAt === null
        ? openSecret(this.key, id, record.sealedSecret)
        : undefined;
    // A revoke here while the row was read may be newer than the row: then nothing is cached.
    if (revocations === this.revocations) this.remember(id, secret);
    return secret;
  }

  /**
   * What secretFor would answer without reading the store: the secret (or
   * undefined: no such key) while the cache holds it, else undefined. Every
   * signed request needs one, and this answers it without an await.
   */
  cachedSecret(id: string): { secret: string | undefined } | undefined {
    if (!ACCESS_KEY_ID.test(id)) return { secret: undefined };
    const cached = this.cache.get(id);
    return cached && this.now() - cached.readAt < CACHE_MS ? cached : undefined;
  }

  private remember(id: string, secret: string | undefined): void {
    this.cache.delete(id); // re-inserted last: the Map's order is the eviction order
    if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(id, { secret, readAt: this.now() });
  }
}

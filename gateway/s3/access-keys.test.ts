import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteMetadataStore, openDatabase } from '../../shared/sqlite-metadata-store.js';
import { ACCESS_KEY_ID, AccessKeys, CACHE_MS, newAccessKeyId, newSecret } from './access-keys.js';
import { SealedSecretError } from './secret-box.js';

let dir: string;
let path: string;
const stores: SqliteMetadataStore[] = [];
let clock = 1_000;

function open(): SqliteMetadataStore {
  const store = new SqliteMetadataStore(openDatabase(path));
  stores.push(store);
  return store;
}

/** The store's access-key methods, bound, to wrap one of them. */
function pick(store: SqliteMetadataStore) {
  const { s3 } = store;
  return {
    createAccessKey: s3.createAccessKey.bind(s3),
    getAccessKey: s3.getAccessKey.bind(s3),
    listAccessKeys: s3.listAccessKeys.bind(s3),
    revokeAccessKey: s3.revokeAccessKey.bind(s3),
  };
}

function keys(clusterSecret = 'cluster-secret-one', store = open()): AccessKeys {
  return new AccessKeys({ store: store.s3, clusterSecret, now: () => clock });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trove-keys-'));
  path = join(dir, 'trove.db');
});
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('access key ids and secrets', () => {
  it('are shaped as AWS shapes them, TRV first', () => {
    for (let i = 0; i < 50; i++) {
      expect(newAccessKeyId()).toMatch(ACCESS_KEY_ID);
      expect(newSecret()).toMatch(/^[A-Za-z0-9+/]{40}$/);
    }
    expect(newAccessKeyId()).not.toBe(newAccessKeyId());
  });
});

describe('AccessKeys', () => {
  it('returns the secret once, stores it sealed, and lists keys without it', async () => {
    const store = open();
    const made = await keys(undefined, store).create('ci');
    expect(made).toMatchObject({ name: 'ci', createdAt: 1_000, revokedAt: null });
    const row = await store.s3.getAccessKey(made.id);
    expect(row!.sealedSecret).not.toContain(made.secret);
    const listed = await keys().list();
    expect(listed).toEqual([{ id: made.id, name: 'ci', createdAt: 1_000, revokedAt: null }]);
    expect(JSON.stringify(listed)).not.toContain(made.secret);
  });

  it('gives the secret of an active key to any gateway sharing the store', async () => {
    const made = await keys().create();
    expect(await keys().secretFor(made.id)).toBe(made.secret);
    expect(await keys().secretFor('TRVNOSUCHKEY00000000')).toBeUndefined();
    expect(await keys().secretFor('not-an-id')).toBeUndefined();
  });

  it('forgets a revoked key at once here, and within the cache time on other gateways', async () => {
    const here = keys();
    const other = keys();
    const made = await here.create();
    expect(await other.secretFor(made.id)).toBe(made.secret);
    expect(await here.secretFor(made.id)).toBe(made.secret);
    expect(await here.revoke(made.id)).toBe(true);
    expect(await here.revoke(made.id)).toBe(false);
    expect(await here.secretFor(made.id)).toBeUndefined();
    // The other gateway still trusts what it read, until its cache runs out.
    expect(await other.secretFor(made.id)).toBe(made.secret);
    clock += CACHE_MS;
    expect(await other.secretFor(made.id)).toBeUndefined();
    expect((await here.list())[0]).toMatchObject({ id: made.id, revokedAt: 1_000 });
  });

  it('does not cache a secret read before a revocation that lands meanwhile', async () => {
    const store = open();
    const made = await keys('cluster-secret-one', store).create('racy');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // A read that fetched the row before the revoke committed, and returns after it.
    const slow = new AccessKeys({
      store: {
        ...pick(store),
        getAccessKey: async (id) => {
          const row = await store.s3.getAccessKey(id);
          await gate;
          return row;
        },
      },
      clusterSecret: 'cluster-secret-one',
      now: () => clock,
    });
    const reading = slow.secretFor(made.id);
    expect(await slow.revoke(made.id)).toBe(true);
    release();
    expect(await reading).toBe(made.secret); // it began before the revocation
    expect(await slow.secretFor(made.id)).toBeUndefined(); // but was not cached past it
  });

  it('fails loudly, not as an unknown key, under another cluster secret', async () => {
    const made = await keys('cluster-secret-one').create();
    await expect(keys('cluster-secret-two').secretFor(made.id)).rejects.toThrow(SealedSecretError);
  });
});

/**
 * Resume grants: a download that was cut off resumes without taking a second
 * download (docs/api.md, "What counts as a download").
 *
 * A counted GET of a limited file gives its client a grant for that file,
 * held two ways, each enough on its own and each readable by every gateway:
 *
 * - by client address (client-ip.ts, TRUST_PROXY aware), in Redis under
 *   `<CLUSTER_NAME>:grant:<file id>:<client>` with the grant's TTL: what
 *   `curl -C -` carries, as it sends nothing but the URL and a Range;
 * - by a signed cookie (`HMAC(file id, expiry)`, `Path=/download/<id>`):
 *   what a browser carries, from whatever address it has now. It is checked
 *   with no state, with a key derived from the cluster secret. It is not
 *   `Secure`: it grants no more than the link itself, which travels the same
 *   way.
 *
 * A request is a resume when it asks for a range that starts past byte 0, or
 * for any range under an If-Range that matched (a browser resuming its copy
 * of this very file). A resume holding a grant counts nothing and renews the
 * grant (a sliding TTL). A fresh GET counts as ever and gives a new grant.
 *
 * Redis failing costs only the address grants: the lookup answers "no grant",
 * so the resume counts (never served free on an error), and it is logged.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.js';
import type { ByteRange } from '../../shared/range.js';
import { clientAddress } from '../http/client-ip.js';

/** What a served resume's grant was found by (a label of `trove_download_resumes_total`). */
export type GrantHolder = 'cookie' | 'address';

export const GRANT_COOKIE = 'trove_grant';

/** Redis gets this long to answer a lookup before the resume is counted instead. */
const REDIS_TIMEOUT_MS = 250;

/** HMAC(cluster secret, "trove download grants"): a key of its own, so no other signature of the cluster passes for a grant. */
export function resumeGrantKey(clusterSecret: string): Buffer {
  return createHmac('sha256', clusterSecret).update('trove download grants').digest();
}

/** The Redis key of the grant of `client` (client-ip.ts's key) for file `fileId`. */
export const grantKey = (clusterName: string, fileId: string, client: string) =>
  `${clusterName}:grant:${fileId}:${client}`;

/**
 * Whether a request resumes a download: `range` (what is served, after
 * If-Range) starts past byte 0, or came under an If-Range (which matched, or
 * there would be no range). `bytes=0-` alone is a fresh download.
 */
export function isResume(range: ByteRange | undefined, ifRange: boolean): boolean {
  return range !== undefined && (range.start > 0 || ifRange);
}

function signature(key: Buffer, fileId: string, exp: number): Buffer {
  return createHmac('sha256', key).update(`${fileId}.${exp}`).digest();
}

/** The cookie value of a grant for `fileId` until `exp` (Unix seconds): `<exp>.<base64url HMAC>`. */
export function signGrant(key: Buffer, fileId: string, exp: number): string {
  return `${exp}.${signature(key, fileId, exp).toString('base64url')}`;
}

/** Whether cookie value `value` is a grant for `fileId`, signed with `key`, still valid at `now` (ms). */
export function verifyGrant(key: Buffer, fileId: string, value: string, now = Date.now()): boolean {
  const match = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!match) return false;
  const exp = Number(match[1]);
  const given = Buffer.from(match[2]!, 'base64url');
  return timingSafeEqual(given, signature(key, fileId, exp)) && now < exp * 1000;
}

/**
 * The Set-Cookie of a grant for `fileId`, valid for `ttlSeconds` from `now`
 * (ms). Its path is the download's as the browser sees it: under PUBLIC_URL's
 * path when Trove is served below one (`https://host/trove` behind a proxy
 * that strips `/trove`), or the browser would never send it back.
 */
export function grantCookie(
  key: Buffer,
  fileId: string,
  ttlSeconds: number,
  now = Date.now(),
  publicUrl?: string,
): string {
  const exp = Math.floor(now / 1000) + ttlSeconds;
  const prefix = publicUrl ? new URL(publicUrl).pathname.replace(/\/+$/, '') : '';
  return (
    `${GRANT_COOKIE}=${signGrant(key, fileId, exp)}; Max-Age=${ttlSeconds}; ` +
    `Path=${prefix}/download/${fileId}; HttpOnly; SameSite=Lax`
  );
}

/** Every value of cookie `name` in a Cookie header (another cookie of that name may sit on a wider path). */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (!header) return [];
  return header
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => pair.startsWith(`${name}=`))
    .map((pair) => pair.slice(name.length + 1));
}

export interface ResumeGrantsDeps {
  redis: Redis;
  /** resumeGrantKey(cluster secret): the same on every gateway of the cluster. */
  key: Buffer;
  /** DOWNLOAD_GRANT_TTL_SECONDS; 0: no grants are given, every resume counts. */
  ttlSeconds: number;
  /** Prefix of the Redis keys. */
  clusterName: string;
  /** TRUST_PROXY: the client address comes from X-Forwarded-For. */
  trustProxy: boolean;
  /** PUBLIC_URL: its path, if any, prefixes the cookie's. */
  publicUrl?: string;
  log: Logger;
}

type Ctx = Context<{ Bindings: HttpBindings }>;

export class ResumeGrants {
  constructor(private readonly deps: ResumeGrantsDeps) {}

  /**
   * How the client of `c` holds a grant for `fileId`, when the request is a
   * resume (`range` as served) and it holds one; undefined: count it.
   */
  async held(
    c: Ctx,
    fileId: string,
    range: ByteRange | undefined,
  ): Promise<GrantHolder | undefined> {
    if (this.deps.ttlSeconds === 0 || !isResume(range, c.req.header('if-range') !== undefined))
      return undefined;
    return this.holder(fileId, c.req.header('cookie'), this.clientOf(c));
  }

  /**
   * Gives the client of `c` a grant for `fileId`, or renews the one it
   * resumed with: its address's in Redis, and the returned Set-Cookie. The
   * Redis write goes in the background, beside the first bytes rather than
   * before them (no round trip added to a download); a grant lost or not yet
   * landed only makes a resume count.
   */
  give(c: Ctx, fileId: string): string | undefined {
    if (this.deps.ttlSeconds === 0) return undefined;
    const client = this.clientOf(c);
    if (client) void this.remember(fileId, client);
    return grantCookie(
      this.deps.key,
      fileId,
      this.deps.ttlSeconds,
      Date.now(),
      this.deps.publicUrl,
    );
  }

  /** The grant a Cookie header or a client address holds for `fileId`; the cookie first, as it costs no Redis call. */
  async holder(
    fileId: string,
    cookie: string | undefined,
    client: string | undefined,
    now = Date.now(),
  ): Promise<GrantHolder | undefined> {
    if (cookieValues(cookie, GRANT_COOKIE).some((v) => verifyGrant(this.deps.key, fileId, v, now)))
      return 'cookie';
    if (!client) return undefined;
    try {
      return (await this.lookup(grantKey(this.deps.clusterName, fileId, client)))
        ? 'address'
        : undefined;
    } catch (err) {
      this.deps.log.warn(
        { id: fileId, client, err: (err as Error).message },
        'resume grant lookup failed: the resume counts as a download',
      );
      return undefined;
    }
  }

  /** Records the grant of `client` for `fileId` in Redis, for the grant's TTL from now. */
  async remember(fileId: string, client: string): Promise<void> {
    const { redis, clusterName, ttlSeconds, log } = this.deps;
    try {
      // A disconnected client would queue the write until Redis is back, long after it matters.
      if (redis.status !== 'ready') throw new Error(`Redis is ${redis.status}`);
      await redis.set(grantKey(clusterName, fileId, client), '1', 'EX', ttlSeconds);
    } catch (err) {
      log.warn(
        { id: fileId, client, err: (err as Error).message },
        'could not record a resume grant: a resume from this address will count',
      );
    }
  }

  private async lookup(key: string): Promise<boolean> {
    const { redis } = this.deps;
    if (redis.status !== 'ready') throw new Error(`Redis is ${redis.status}`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const value = await Promise.race([
        redis.get(key),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error('Redis did not answer in time')),
            REDIS_TIMEOUT_MS,
          );
        }),
      ]);
      return value !== null;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The key the client of `c` is known by (client-ip.ts), or undefined when its address is unknown. */
  private clientOf(c: Ctx): string | undefined {
    const peer = c.env?.incoming?.socket?.remoteAddress;
    return clientAddress(peer, c.req.header('x-forwarded-for'), this.deps.trustProxy)?.key;
  }
}

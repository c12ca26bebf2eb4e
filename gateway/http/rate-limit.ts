/**
 * Per-client rate limits (RATE_LIMIT_* in docs/configuration.md), kept in
 * Redis so that every gateway of the cluster counts against the same budget.
 *
 * - uploads:   POST/PUT /upload…, /process, /batch.
 * - downloads: download attempts, GET/HEAD /download/:id, /s/:id and
 *              /files/:id/thumbnail.
 * - misses:    download attempts answered "no such file" (404, or 410 expired
 *              or deleted). Once a client is over it, its download attempts
 *              are refused before any lookup: a scan of guessed ids costs one
 *              Redis call per request. A used-up link (410
 *              DOWNLOAD_LIMIT_REACHED) is not a miss: only holders of a real
 *              link see it, and they are held to `downloads` already.
 *
 * Refusals are 429 RATE_LIMITED with Retry-After. A client is its IP address
 * (an IPv6 /64), see client-ip.ts. Loopback clients are never limited: that is
 * the machine itself (tests, benches, the drill) or a proxy on it whose
 * forwarded address is not trusted, and limiting a proxy's own address would
 * put every visitor in one bucket, letting one of them lock out all the rest
 * (so behind ngrok, set TRUST_PROXY). When Redis cannot answer, requests go
 * through unlimited (fail open) and a warning is logged now and then.
 *
 * The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept
 * as one timestamp per key): "max per window" means a burst of up to `max`
 * requests, then one more every window/max. It has no window edges (a fixed
 * window lets 2×max through around a boundary), needs one small key per
 * client and limit instead of a log of timestamps, and tells exactly how long
 * a refused client must wait, which becomes Retry-After. Time comes from
 * Redis, so gateways with skewed clocks still agree.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context, MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import type { GatewayConfig } from '../../shared/config.js';
import { TooManyRequestsError, TroveError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { MISS_CODES } from '../files/file-rules.js';
import { clientAddress } from './client-ip.js';

/**
 * GCRA over every KEYS[i], all or nothing. ARGV[1] is the window in ms; for
 * key i, ARGV[2i] is its max and ARGV[2i+1] its mode: `take` (count the
 * request if every limit allows it), `peek` (refuse when over, count nothing),
 * `add` (count it, never refuse). A key holds its "theoretical arrival time"
 * (TAT): the request is allowed when TAT + window/max - window <= now.
 * Returns {0, 0} when allowed, else {i of the refusing key, ms to wait}.
 */
const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
local tats = {}
for i, key in ipairs(KEYS) do
  local max = tonumber(ARGV[2 * i])
  local mode = ARGV[2 * i + 1]
  local tat = math.max(tonumber(redis.call('GET', key) or 0), now) + window / max
  local wait = tat - window - now
  if mode ~= 'add' and wait > 0 then return {i, math.ceil(wait)} end
  tats[i] = tat
end
for i, key in ipairs(KEYS) do
  if ARGV[2 * i + 1] ~= 'peek' then
    redis.call('SET', key, string.format('%.3f', tats[i]), 'PX', math.ceil(tats[i] - now))
  end
end
return {0, 0}`;

type Mode = 'take' | 'peek' | 'add';

/** The kinds of request a client is limited in (misses are counted, not admitted). */
export type LimitCategory = 'uploads' | 'downloads';

interface Limit {
  name: LimitCategory | 'misses';
  max: number;
  /** The environment variable that sets it, named in refusals so an operator knows what to raise. */
  variable: string;
  /** "too many … from your address" */
  what: string;
}

/** Redis gets this long to answer before the request goes through unlimited. */
const REDIS_TIMEOUT_MS = 250;
/** At most one "limits not enforced" warning per this many ms. */
const WARN_EVERY_MS = 60_000;

export interface RateLimitDeps {
  redis: Redis;
  log: Logger;
  /** Prefix of the Redis keys, so several clusters can share one Redis. */
  clusterName: string;
  /** TRUST_PROXY: take the client from X-Forwarded-For. */
  trustProxy: boolean;
  /** Absent (unit tests that build the app) or disabled: no limits. */
  config: GatewayConfig['rateLimits'] | undefined;
}

type Ctx = Context<{ Bindings: HttpBindings }>;

export class RateLimits {
  private readonly windowMs: number;
  private readonly missLimit: Limit | undefined;
  /** What admitting a request of each category checks: the limits that are on. */
  private readonly admission: Record<LimitCategory, [Limit, Mode][]>;
  private lastWarning = 0;

  constructor(private readonly deps: RateLimitDeps) {
    const c = deps.config;
    const on = c?.rateLimits ?? false;
    this.windowMs = (c?.rateLimitWindowSeconds ?? 60) * 1000;
    const limit = (name: Limit['name'], max: number, variable: string, what: string) =>
      on && max > 0 ? { name, max, variable, what } : undefined;
    const uploads = limit('uploads', c?.rateLimitUploads ?? 0, 'RATE_LIMIT_UPLOADS', 'uploads');
    const downloads = limit(
      'downloads',
      c?.rateLimitDownloads ?? 0,
      'RATE_LIMIT_DOWNLOADS',
      'download attempts',
    );
    this.missLimit = limit(
      'misses',
      c?.rateLimitMisses ?? 0,
      'RATE_LIMIT_MISSES',
      'requests for files that do not exist or are gone',
    );
    const steps = (...all: [Limit | undefined, Mode][]) =>
      all.filter((step): step is [Limit, Mode] => step[0] !== undefined);
    this.admission = {
      uploads: steps([uploads, 'take']),
      downloads: steps([this.missLimit, 'peek'], [downloads, 'take']),
    };
    deps.redis.defineCommand('troveRateLimit', { lua: GCRA_SCRIPT });
  }

  /** Middleware of uploads, /process and /batch: one request counts one, whatever it carries. */
  readonly uploads: MiddlewareHandler = async (c, next) => {
    await this.admit(c, 'uploads');
    await next();
  };

  /** Middleware of download attempts: refuses a client over its misses or its attempts, then counts a miss. */
  readonly downloads: MiddlewareHandler = async (c, next) => {
    await this.admit(c, 'downloads');
    await next();
    // Counted before the answer leaves, so the client's next attempt already sees it.
    const misses = this.missLimit;
    const client = misses && isMiss(c.error) ? this.clientOf(c) : undefined;
    if (misses && client) await this.check(client, [[misses, 'add']]);
  };

  /**
   * Counts the request in `category` (a download also checks the client's
   * misses); throws TooManyRequestsError when the client is over. For a
   * server that routes before it limits (the S3 port), in the middleware's place.
   */
  async admit(c: Context, category: LimitCategory): Promise<void> {
    const steps = this.admission[category];
    const client = steps.length > 0 ? this.clientOf(c) : undefined;
    if (client) await this.enforce(client, steps);
  }

  /** The key the client is counted under; undefined (not limited) for loopback or an unknown address. */
  private clientOf(c: Context): string | undefined {
    const peer = (c as Ctx).env?.incoming?.socket?.remoteAddress;
    const client = clientAddress(peer, c.req.header('x-forwarded-for'), this.deps.trustProxy);
    return client && !client.loopback ? client.key : undefined;
  }

  private async enforce(client: string, steps: [Limit, Mode][]): Promise<void> {
    const refusal = await this.check(client, steps);
    if (!refusal) return;
    const { limit, waitMs } = refusal;
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    this.deps.log.debug({ client, limit: limit.name, retry_after: seconds }, 'rate limited');
    const rule = `at most ${limit.max} per ${this.windowMs / 1000} s (${limit.variable})`;
    const consequence = limit.name === 'misses' ? 'downloads are refused for' : 'try again in';
    throw new TooManyRequestsError(
      `too many ${limit.what} from your address: ${rule}; ${consequence} ${seconds} s`,
      seconds,
    );
  }

  /** Runs the script; the refusing limit and its wait, or undefined when allowed or Redis is not answering. */
  private async check(
    client: string,
    steps: [Limit, Mode][],
  ): Promise<{ limit: Limit; waitMs: number } | undefined> {
    const { redis, clusterName } = this.deps;
    // A disconnected client would queue the command until Redis is back: go through at once instead.
    if (redis.status !== 'ready') return this.failOpen(new Error(`Redis is ${redis.status}`));
    const keys = steps.map(([l]) => `${clusterName}:rate:${l.name}:${client}`);
    const args = [String(this.windowMs), ...steps.flatMap(([l, mode]) => [String(l.max), mode])];
    let timer: NodeJS.Timeout | undefined;
    try {
      const [refused, waitMs] = await Promise.race([
        (redis as RedisWithRateLimit).troveRateLimit(keys.length, ...keys, ...args),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error('Redis did not answer in time')),
            REDIS_TIMEOUT_MS,
          );
        }),
      ]);
      return refused === 0 ? undefined : { limit: steps[refused - 1]![0], waitMs };
    } catch (err) {
      return this.failOpen(err as Error);
    } finally {
      clearTimeout(timer);
    }
  }

  private failOpen(err: Error): undefined {
    const now = Date.now();
    if (now - this.lastWarning >= WARN_EVERY_MS) {
      this.lastWarning = now;
      this.deps.log.warn({ err: err.message }, 'rate limits not enforced: Redis unavailable');
    }
    return undefined;
  }
}

function isMiss(err: Error | undefined): boolean {
  return err instanceof TroveError && MISS_CODES.has(err.code);
}

type RedisWithRateLimit = Redis & {
  troveRateLimit(numKeys: number, ...keysThenArgs: string[]): Promise<[number, number]>;
};

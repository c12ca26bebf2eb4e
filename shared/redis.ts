/**
 * The Redis connection (ioredis) and its Redlock. Commands fail fast while
 * Redis is down (the caller answers 503) instead of queueing without bound,
 * and the connection comes back on its own when Redis does.
 *
 * With sentinels the connection asks them for the master of its group, and
 * again at every reconnect: when the master dies and they promote a replica,
 * the same client finds the new master by itself (docs/deployment.md says
 * what a failover loses).
 */
import { Redis, type RedisOptions } from 'ioredis';
import Redlock from 'redlock';
import type { RedisConnection } from './config.js';
import type { Logger } from './logger.js';

const COMMON_OPTIONS: RedisOptions = {
  maxRetriesPerRequest: 1,
  connectTimeout: 2000,
  enableAutoPipelining: true,
  retryStrategy: (times) => Math.min(times * 100, 2000),
};

/** Sentinel mode keeps the URL's user, password and db; its host is the sentinels' to say. */
function sentinelOptions(conn: RedisConnection & { sentinels: object[] }): RedisOptions {
  const url = new URL(conn.url);
  const db = Number(url.pathname.slice(1) || 0);
  return {
    sentinels: conn.sentinels,
    name: conn.sentinelName,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: Number.isInteger(db) ? db : 0,
    // Keep asking the sentinels while none answers (the reconnect strategy spaces the rounds).
    sentinelRetryStrategy: (times) => Math.min(times * 100, 2000),
    // Also hear +switch-master from the sentinels, so a master that is cut off
    // rather than dead is left at once, not after its socket times out.
    failoverDetector: true,
  };
}

/** Clients closed on purpose (closeRedis): the only ones whose end is final. */
const closing = new WeakSet<Redis>();
/** Pause before connecting again a client the library gave up on. */
const RECONNECT_AFTER_END_MS = 500;

export function createRedis(conn: RedisConnection, log: Logger): Redis {
  const redis = conn.sentinels
    ? new Redis({ ...COMMON_OPTIONS, ...sentinelOptions({ ...conn, sentinels: conn.sentinels }) })
    : new Redis(conn.url, COMMON_OPTIONS);
  // ioredis ends a client for good when a connect attempt is aborted under it: the sentinels'
  // failover detector closing the connector while a reconnect asks them for the master does
  // that. Every later command fails "Connection is closed". Only closeRedis may end it.
  redis.on('end', () => {
    if (closing.has(redis)) return;
    log.warn('Redis client ended by the library; connecting again');
    setTimeout(() => {
      if (!closing.has(redis) && redis.status === 'end') redis.connect().catch(() => undefined);
    }, RECONNECT_AFTER_END_MS).unref();
  });
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) log.warn({ err: err.message }, 'Redis unreachable');
    down = true;
  });
  redis.on('ready', () => {
    if (down) log.info('Redis reachable again');
    down = false;
  });
  return redis;
}

/** Closes a client of createRedis for good (it is not connected again). */
export function closeRedis(redis: Redis): void {
  closing.add(redis);
  redis.disconnect();
}

/**
 * Redlock over one Redis (the single-instance form of the algorithm). Short
 * retry steps: a lock on a hot file is held for a millisecond or two, so
 * waiting Redlock's default 200 ms per retry would throttle it needlessly.
 */
export function createRedlock(redis: Redis): Redlock {
  return new Redlock([redis], { retryCount: 150, retryDelay: 10, retryJitter: 15 });
}

/**
 * The Redis connection (ioredis) and its Redlock. Commands fail fast while
 * Redis is down (the caller answers 503) instead of queueing without bound,
 * and the connection comes back on its own when Redis does.
 */
import { Redis } from 'ioredis';
import Redlock from 'redlock';
import type { Logger } from './logger.js';

export function createRedis(url: string, log: Logger): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(times * 100, 2000),
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

/**
 * Redlock over one Redis (the single-instance form of the algorithm). Short
 * retry steps: a lock on a hot file is held for a millisecond or two, so
 * waiting Redlock's default 200 ms per retry would throttle it needlessly.
 */
export function createRedlock(redis: Redis): Redlock {
  return new Redlock([redis], { retryCount: 150, retryDelay: 10, retryJitter: 15 });
}

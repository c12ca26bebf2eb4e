/**
 * The lock @tus/server takes around every request on an upload (HEAD,
 * PATCH, DELETE), held across gateways: a Redlock lock per upload, kept
 * alive while the request runs, so a PATCH that reaches another gateway
 * after a dropped connection waits for the first one to let go.
 *
 * tus asks a lock holder to let go when another request wants the lock (the
 * client reconnected; the old request may sit on a half-open connection for
 * minutes). Within a gateway that is a call; across gateways a message on a
 * Redis channel that every gateway listens to. The holder's request then
 * ends (tus stores what it received) and unlocks. A gateway killed while it
 * holds a lock loses it when the lock's TTL runs out, seconds later.
 *
 * Redis only serialises requests for speed and tidiness: the metadata store
 * decides every offset (storePart is conditional), so when Redis is down the
 * lock falls back to this gateway alone and nothing can go wrong but a
 * wasted part.
 */
import type { Redis } from 'ioredis';
import type Redlock from 'redlock';
import type { Lock as HeldLock } from 'redlock';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import type { Logger } from '../../shared/logger.js';

export interface RedisLockerOptions {
  redlock: Redlock;
  /** Publishes release requests. */
  redis: Redis;
  /** A connection of its own for the release channel (a subscribed client can do nothing else). */
  subscriber: Redis;
  /** The cluster's name: prefix of its keys and channel. */
  prefix: string;
  log: Logger;
  /** How long a lock lives without being extended: what a killed gateway costs the next request. */
  ttlMs?: number;
  /** How long a request waits for a lock before giving up (tus answers 500 ERR_LOCK_TIMEOUT, the client retries). */
  acquireTimeoutMs?: number;
}

const RETRY_MS = 100;

export class RedisLocker implements Locker {
  /** Locks this gateway holds: upload id → how to ask the request holding it to let go. */
  readonly held = new Map<string, RequestRelease>();
  private readonly channel: string;
  readonly ttlMs: number;
  readonly acquireTimeoutMs: number;

  private constructor(readonly opts: RedisLockerOptions) {
    this.channel = `${opts.prefix}:tus:release`;
    this.ttlMs = opts.ttlMs ?? 6000;
    this.acquireTimeoutMs = opts.acquireTimeoutMs ?? 30_000;
  }

  /** Subscribes to the release channel (so other gateways can ask this one to let go). */
  static async start(opts: RedisLockerOptions): Promise<RedisLocker> {
    const locker = new RedisLocker(opts);
    opts.subscriber.on('message', (channel: string, id: string) => {
      if (channel === locker.channel) void locker.held.get(id)?.();
    });
    try {
      await opts.subscriber.subscribe(locker.channel);
    } catch (err) {
      // ioredis subscribes again once it connects; until then only local release works.
      opts.log.warn({ err: (err as Error).message }, 'tus lock release channel not subscribed yet');
    }
    return locker;
  }

  newLock(id: string): Lock {
    return new RedisLock(this, id);
  }

  key(id: string): string {
    return `${this.opts.prefix}:lock:tus:${id}`;
  }

  /** Asks whoever holds the lock of `id`, here or on another gateway, to let go. */
  async requestRelease(id: string): Promise<void> {
    await this.held.get(id)?.();
    await this.opts.redis.publish(this.channel, id).catch(() => undefined);
  }
}

class RedisLock implements Lock {
  private held?: HeldLock;
  private keepAlive?: NodeJS.Timeout;
  private release?: RequestRelease;

  constructor(
    private readonly locker: RedisLocker,
    private readonly id: string,
  ) {}

  async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const { locker, id } = this;
    const deadline = Date.now() + locker.acquireTimeoutMs;
    let asked = false;
    for (;;) {
      if (signal.aborted) throw ERRORS.ABORTED;
      // One holder per gateway first: the Redis lock is not reentrant either.
      if (!locker.held.has(id)) {
        const got = await this.tryAcquire();
        if (got) break;
      }
      if (!asked) {
        asked = true;
        await locker.requestRelease(id);
      }
      if (Date.now() > deadline) throw ERRORS.ERR_LOCK_TIMEOUT;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    this.release = requestRelease;
    locker.held.set(id, requestRelease);
  }

  /** True when this gateway now holds the lock (in Redis, or alone when Redis cannot answer). */
  private async tryAcquire(): Promise<boolean> {
    const { locker } = this;
    try {
      this.held = await locker.opts.redlock.acquire([locker.key(this.id)], locker.ttlMs, {
        retryCount: 0,
      });
    } catch (err) {
      if (await isContention(err)) return false;
      locker.opts.log.warn(
        { upload: this.id, err: (err as Error).message },
        'tus lock: Redis unavailable, locking on this gateway only',
      );
      return true;
    }
    this.keepAlive = setInterval(() => void this.extend(), locker.ttlMs / 3);
    this.keepAlive.unref();
    return true;
  }

  private async extend(): Promise<void> {
    try {
      this.held = await this.held?.extend(this.locker.ttlMs);
    } catch (err) {
      this.locker.opts.log.warn(
        { upload: this.id, err: (err as Error).message },
        'tus lock could not be extended',
      );
    }
  }

  async unlock(): Promise<void> {
    clearInterval(this.keepAlive);
    if (this.locker.held.get(this.id) === this.release) this.locker.held.delete(this.id);
    const held = this.held;
    this.held = undefined;
    await held?.release().catch(() => undefined); // expired or Redis away: its TTL ends it
  }
}

/** Redlock's "the resource is locked by someone else" (as opposed to Redis failing). */
async function isContention(err: unknown): Promise<boolean> {
  const attempts = (err as { attempts?: readonly Promise<{ votesAgainst: Map<unknown, Error> }>[] })
    .attempts;
  if ((err as Error)?.name !== 'ExecutionError' || !attempts?.length) return false;
  // A vote against with a ResourceLockedError means held elsewhere; other errors mean Redis failed.
  const stats = await Promise.all(attempts);
  return stats.some((a) =>
    [...a.votesAgainst.values()].some((e) => e?.name === 'ResourceLockedError'),
  );
}

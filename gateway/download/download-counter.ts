/**
 * Download counters, exact across any number of gateways.
 *
 * The metadata store is the arbiter: a download is granted only by a
 * conditional write of the file's durable count (`updateDownloadsUsed`, from
 * the value read to the new one, fsynced), so a holder whose lock expired
 * mid-section (a GC pause, SIGSTOP, a busy database) cannot grant twice or
 * move the count backwards: its write finds the count moved and fails.
 *
 * Redis caches each limited file's count (`trove:downloads:<id>`) and hosts
 * the per-file Redlock lock that keeps holders from colliding in the normal
 * case. Redis follows the store, never leads it: it is set (compare-and-set)
 * only after the store accepted a count, and dropped whenever it might be
 * stale, so the next holder reloads from the store. When Redis has lost the
 * key (restart, FLUSHALL) the count is restored from the store, never reset.
 *
 * Within one gateway, requests for the same file queue up behind a single
 * lock holder, which settles the whole queue in one critical section (grants
 * up to what is left, refuses the rest). So a hot file costs one lock round
 * and one store write per batch, not per request, and unrelated files never
 * wait for each other (their store writes share an fsync).
 */
import type { Redis } from 'ioredis';
import type Redlock from 'redlock';
import { UnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { FileRecord, MetadataStore } from '../../shared/metadata-store.js';

/** What the counter needs to know about a file. */
export type CountedFile = Pick<FileRecord, 'id' | 'maxDownloads' | 'expiresAt'>;

export type Grant = { granted: true; left: number } | { granted: false; left: 0 };

interface Op {
  kind: 'take' | 'return';
  resolve: (grant: Grant) => void;
  reject: (err: unknown) => void;
}

interface FileQueue {
  file: CountedFile;
  ops: Op[];
}

const LOCK_TTL_MS = 5000;
const CAS_ATTEMPTS = 3;
/** Redis keeps a count for a day past the file's expiry, then lets it go. */
const KEY_LINGER_MS = 24 * 3600 * 1000;

/** SET key new PXAT t, only if key still holds `expected` ('' = absent). */
const CAS_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
  return 1
end
return 0`;

export const counterKey = (id: string) => `trove:downloads:${id}`;
export const lockKey = (id: string) => `trove:lock:downloads:${id}`;

export interface CounterDeps {
  redis: Redis;
  redlock: Redlock;
  store: MetadataStore;
  log: Logger;
}

/** Download counting as the download handler uses it (run.ts passes the DownloadCounter; a test may pass a fake). */
export interface DownloadGrants {
  /** Consumes one download of a limited file, if one is left. */
  take(file: CountedFile): Promise<Grant>;
  /** Returns a download that served no byte. */
  giveBack(file: CountedFile): Promise<void>;
}

export class DownloadCounter implements DownloadGrants {
  private readonly queues = new Map<string, FileQueue>();

  constructor(private readonly deps: CounterDeps) {
    deps.redis.defineCommand('troveCas', { numberOfKeys: 1, lua: CAS_SCRIPT });
  }

  /** Consumes one download of a limited file, if one is left. */
  take(file: CountedFile): Promise<Grant> {
    return this.enqueue(file, 'take');
  }

  /** Returns a download that served no byte. */
  async giveBack(file: CountedFile): Promise<void> {
    await this.enqueue(file, 'return');
  }

  private enqueue(file: CountedFile, kind: Op['kind']): Promise<Grant> {
    return new Promise((resolve, reject) => {
      const queue = this.queues.get(file.id);
      if (queue) {
        queue.ops.push({ kind, resolve, reject });
        return;
      }
      const fresh: FileQueue = { file, ops: [{ kind, resolve, reject }] };
      this.queues.set(file.id, fresh);
      void this.drain(fresh);
    });
  }

  /** Settles the file's queue batch by batch until it is empty, then forgets it. */
  private async drain(queue: FileQueue): Promise<void> {
    while (queue.ops.length > 0) {
      const batch = queue.ops.splice(0);
      try {
        const grants = await this.settle(queue.file, batch);
        batch.forEach((op, i) => op.resolve(grants[i]!));
      } catch (err) {
        this.deps.log.warn({ id: queue.file.id, err: (err as Error).message }, 'counter failed');
        const unavailable = new UnavailableError(
          'the download counter is unavailable; try again shortly',
          'COUNTER_UNAVAILABLE',
          { cause: err },
        );
        for (const op of batch) op.reject(unavailable);
      }
    }
    this.queues.delete(queue.file.id);
  }

  /** One critical section: apply the batch to the count, in the store, then in Redis. */
  private async settle(file: CountedFile, batch: Op[]): Promise<Grant[]> {
    const lock = await this.deps.redlock.acquire([lockKey(file.id)], LOCK_TTL_MS);
    try {
      for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
        const key = counterKey(file.id);
        const cached = await this.deps.redis.get(key);
        const before = cached !== null ? Number(cached) : await this.durableCount(file.id);
        const { used, grants } = applyBatch(before, file.maxDownloads, batch);
        if (used === before) {
          // Nothing to write. A refusal judged on Redis's count is confirmed by the store first.
          const refused = grants.some((g) => !g.granted);
          if (cached !== null && refused && (await this.durableCount(file.id)) !== before) {
            await this.deps.redis.del(key);
            continue;
          }
          if (cached === null) await this.cache(file, '', before);
          return grants;
        }
        if (!(await this.deps.store.updateDownloadsUsed(file.id, before, used))) {
          // The store moved on without us (our lock expired and another holder wrote, or Redis
          // lagged the store): nothing was granted. Drop the cached count and redo the batch.
          this.deps.log.warn(
            { id: file.id, before, attempt },
            'download count moved; batch redone',
          );
          await this.deps.redis.del(key);
          continue;
        }
        await this.cache(file, cached ?? '', used);
        return grants;
      }
      throw new Error('download count kept changing under the lock');
    } finally {
      await lock.release().catch(() => undefined); // it expires on its own
    }
  }

  /**
   * Sets the cached count from `expected` to `used`. If Redis moved meanwhile
   * (or fails), the key is dropped instead: the next holder reloads from the
   * store. The grants stand either way: the store has them.
   */
  private async cache(file: CountedFile, expected: string, used: number): Promise<void> {
    const key = counterKey(file.id);
    const redis = this.deps.redis as RedisWithCas;
    try {
      const pxat = String(file.expiresAt + KEY_LINGER_MS);
      if ((await redis.troveCas(key, expected, String(used), pxat)) !== 1) await redis.del(key);
    } catch (err) {
      this.deps.log.warn({ id: file.id, err: (err as Error).message }, 'counter cache not updated');
      await redis.del(key).catch(() => undefined);
    }
  }

  private async durableCount(id: string): Promise<number> {
    const file = await this.deps.store.getFile(id);
    // The first download of a file, or Redis lost the key (restart, FLUSHALL): the store has the truth.
    if (file) this.deps.log.debug({ id, used: file.downloadsUsed }, 'counter loaded from store');
    return file?.downloadsUsed ?? 0;
  }
}

type RedisWithCas = Redis & {
  troveCas(key: string, expected: string, next: string, pxat: string): Promise<number>;
};

/**
 * The pure part: returns first (a slot handed back can serve a request in the
 * same batch), then grants in arrival order while downloads are left.
 */
export function applyBatch(
  usedBefore: number,
  max: number,
  batch: Pick<Op, 'kind'>[],
): { used: number; grants: Grant[] } {
  let used = usedBefore;
  for (const op of batch) if (op.kind === 'return') used = Math.max(0, used - 1);
  const grants = batch.map((op): Grant => {
    if (op.kind === 'return') return { granted: true, left: Math.max(0, max - used) };
    if (used >= max) return { granted: false, left: 0 };
    used++;
    return { granted: true, left: max - used };
  });
  return { used, grants };
}

/**
 * Download counters, exact across any number of gateways.
 *
 * The metadata store is the arbiter: a batch of downloads is settled by one
 * conditional write of the file's durable count (`grantDownloads`: grants
 * only while the count stays within `max_downloads`, durable before it
 * resolves), so two gateways, or a lock holder that stalled past its lock's
 * TTL (a GC pause, SIGSTOP, a busy database), can never grant the same slot
 * twice or move the count backwards: the database fences them.
 *
 * Redis and Redlock coalesce: within one gateway, requests for the same
 * file queue up behind a single lock holder, which settles the whole queue
 * in one store write (grants up to what is left, refuses the rest); across
 * gateways the per-file lock makes them take turns, so each turn is a
 * batch. A hot file costs one lock round and one store write per batch, not
 * per request, and unrelated files never wait for each other. Redis holds
 * no count: losing it (restart, failover, FLUSHALL) loses nothing.
 */
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

export const lockKey = (id: string) => `trove:lock:downloads:${id}`;

export interface CounterDeps {
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

  constructor(private readonly deps: CounterDeps) {}

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

  /** One critical section: the batch settled by the store, under the file's lock. */
  private async settle(file: CountedFile, batch: Op[]): Promise<Grant[]> {
    const lock = await this.deps.redlock.acquire([lockKey(file.id)], LOCK_TTL_MS);
    try {
      const takes = batch.filter((op) => op.kind === 'take').length;
      const counts = await this.deps.store.grantDownloads(file.id, takes, batch.length - takes);
      // The store applied the rule of applyBatch; the grants are read back from its count.
      const { used, grants } = applyBatch(
        counts?.before ?? file.maxDownloads,
        file.maxDownloads,
        batch,
      );
      if (counts && used !== counts.after) {
        throw new Error(`store settled ${counts.before}→${counts.after}, expected ${used}`);
      }
      return grants;
    } finally {
      await lock.release().catch(() => undefined); // it expires on its own
    }
  }
}

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

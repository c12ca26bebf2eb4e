/**
 * The safety net behind delayed messages (run every 30 s by default):
 * expired files nobody deleted (a lost message, a dead worker), tombstones
 * whose grace has passed and that still owe deletes (a node that was down),
 * and tombstones past their retention. Everything it does is idempotent, so
 * several workers may sweep at once.
 */
import type { Logger } from '../shared/logger.js';
import type { MetadataStore } from '../shared/metadata-store.js';
import type { FileDeleter } from './file-deleter.js';

export interface SweepDeps {
  store: MetadataStore;
  deleter: FileDeleter;
  log: Logger;
  graceMs: number;
  retentionMs: number;
}

const BATCH = 200;

export class ExpirySweep {
  constructor(private readonly deps: SweepDeps) {}

  /** One pass; returns what it did. */
  async run(now = Date.now()) {
    const { store, deleter } = this.deps;
    const expired = await store.expiredLiveFiles(now, BATCH);
    for (const file of expired) await deleter.tombstone(file, now);
    const due = await store.tombstonesWithBlobs(now - this.deps.graceMs, BATCH);
    let owed = 0;
    for (const file of due) {
      try {
        owed += await deleter.removeBlobs(file.id);
      } catch (err) {
        owed++;
        this.deps.log.warn({ id: file.id, err: (err as Error).message }, 'sweep could not delete');
      }
    }
    const purged = await store.purgeTombstones(now - this.deps.retentionMs);
    return { expired: expired.length, cleaned: due.length, owed, purged };
  }
}

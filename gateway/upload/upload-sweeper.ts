/**
 * Finds uploads that will never commit (this gateway crashed mid-upload, or a
 * node was down when a failed upload was discarded) and removes their blobs
 * and rows. Runs at start-up and then every minute.
 */
import type { Logger } from '../../shared/logger.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import { discardUpload } from './ingest.js';
import type { Replicator } from '../cluster/replicator.js';

export interface SweeperDeps {
  store: MetadataStore;
  replicator: Replicator;
  log: Logger;
  gatewayId: string;
  pendingTimeoutMs: number;
}

export class UploadSweeper {
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(private readonly deps: SweeperDeps) {}

  /** One pass; resolves with the number of uploads cleaned. */
  sweep(): Promise<number> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  start(intervalMs = 60_000): void {
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async pass(): Promise<number> {
    const { store, log } = this.deps;
    let leftovers;
    try {
      leftovers = await store.abandonedUploads({
        owner: this.deps.gatewayId,
        // Our own pending rows from before this process started belong to uploads that died with it.
        ownerSince: this.startedAt,
        staleBefore: Date.now() - this.deps.pendingTimeoutMs,
        limit: 500,
      });
    } catch (err) {
      // The database is down (a restart): the next pass finds them. Thrown, it would crash the gateway.
      log.warn(
        { err: (err as Error).message },
        'cleanup of abandoned uploads failed; retried later',
      );
      return 0;
    }
    let cleaned = 0;
    for (const f of leftovers) {
      try {
        // Listed as pending a moment ago, but it may have committed since: then it is kept.
        if (await discardUpload(this.deps, f.id)) cleaned++;
        else log.info({ id: f.id }, 'abandoned-looking upload committed meanwhile; kept');
      } catch (err) {
        log.warn({ id: f.id, err: (err as Error).message }, 'cleanup of abandoned upload failed');
      }
    }
    if (leftovers.length > 0) log.info({ count: cleaned }, 'cleaned up abandoned uploads');
    return cleaned;
  }
}

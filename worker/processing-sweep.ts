/**
 * The safety net of image processing (run on REPAIR_SCHEDULE): queues a job
 * for every live image still `pending` some minutes after its upload, which
 * covers a job the gateway could not publish (RabbitMQ down), one that was
 * dead-lettered after transient failures, and images uploaded before this
 * version. A duplicate of a job still queued costs nothing: the first to run
 * processes the image, the others find it done.
 */
import type { AmqpClient } from '../shared/amqp.js';
import type { Logger } from '../shared/logger.js';
import type { MetadataStore } from '../shared/metadata-store.js';

export interface ProcessingSweepDeps {
  store: MetadataStore;
  amqp: AmqpClient;
  log: Logger;
  /** How long after its upload a pending image counts as forgotten. */
  staleMs: number;
}

const BATCH = 500;

export class ProcessingSweep {
  constructor(private readonly deps: ProcessingSweepDeps) {}

  async run(now = Date.now()): Promise<number> {
    const { amqp, store } = this.deps;
    const stale = await store.pendingProcessing(now - this.deps.staleMs, BATCH);
    for (const file of stale) await amqp.publish(amqp.names.imageProcess, { fileId: file.id });
    if (stale.length > 0)
      this.deps.log.info({ images: stale.length }, 'queued pending images again');
    return stale.length;
  }
}

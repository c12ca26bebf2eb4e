/**
 * The periodic safety net of self-healing (run on REPAIR_SCHEDULE): queues
 * anti-entropy for every node and a repair for every replica row that is not
 * `ok`, so a lost trigger (a message, a node return nobody saw) delays a
 * repair by one period at most. A repair still waiting in the queue is not
 * queued again (shared/repair-queue.ts), so sweeps during a long heal do not
 * pile duplicates onto its backlog.
 */
import type { LayoutView } from '../shared/layout-watcher.js';
import type { AmqpClient } from '../shared/amqp.js';
import type { Logger } from '../shared/logger.js';
import type { MetadataStore } from '../shared/metadata-store.js';

export interface RepairSweepDeps {
  store: MetadataStore;
  amqp: AmqpClient;
  /** The layout in force: every node, draining ones included. */
  layout: LayoutView;
  log: Logger;
  /** Queues a repair of blob `key` of file `fileId`; false when one is already queued. */
  repair(fileId: string, key: string): Promise<boolean>;
}

const BATCH = 1000;

export class RepairSweep {
  constructor(private readonly deps: RepairSweepDeps) {}

  async run(): Promise<void> {
    const { amqp, store } = this.deps;
    for (const node of this.deps.layout.nodes())
      await amqp.publish(amqp.names.nodeCheck, { node: node.id });
    const unhealthy = await store.unhealthyReplicas(BATCH);
    const keys = new Map(unhealthy.map((r) => [r.key, r.fileId]));
    let queued = 0;
    for (const [key, fileId] of keys) if (await this.deps.repair(fileId, key)) queued++;
    if (keys.size > 0)
      this.deps.log.info(
        { repairs: queued, already_queued: keys.size - queued },
        'repair sweep queued repairs',
      );
  }
}

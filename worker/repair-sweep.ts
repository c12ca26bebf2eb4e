/**
 * The periodic safety net of self-healing (run on REPAIR_SCHEDULE): queues
 * anti-entropy for every node and a repair for every replica row that is not
 * `ok`, so a lost trigger (a message, a node return nobody saw) delays a
 * repair by one period at most. Jobs are idempotent, so overlapping sweeps of
 * several workers only cost a few duplicate messages.
 */
import type { AmqpClient } from '../shared/amqp.js';
import type { NodeAddress } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import type { MetadataStore } from '../shared/metadata-store.js';

export interface RepairSweepDeps {
  store: MetadataStore;
  amqp: AmqpClient;
  nodes: NodeAddress[];
  log: Logger;
}

const BATCH = 1000;

export class RepairSweep {
  constructor(private readonly deps: RepairSweepDeps) {}

  async run(): Promise<void> {
    const { amqp, store } = this.deps;
    for (const node of this.deps.nodes) await amqp.publish(amqp.names.nodeCheck, { node: node.id });
    const unhealthy = await store.unhealthyReplicas(BATCH);
    const keys = new Map(unhealthy.map((r) => [r.key, r.fileId]));
    for (const [key, fileId] of keys) await amqp.publish(amqp.names.replicaRepair, { fileId, key });
    if (keys.size > 0) this.deps.log.info({ repairs: keys.size }, 'repair sweep queued repairs');
  }
}

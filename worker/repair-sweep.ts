/**
 * The periodic safety net of self-healing (node-cron, REPAIR_SCHEDULE): queues
 * anti-entropy for every node and a repair for every replica row that is not
 * `ok`, so a lost trigger (a message, a node return nobody saw) delays a
 * repair by one period at most. Jobs are idempotent, so overlapping sweeps of
 * several workers only cost a few duplicate messages.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { AmqpClient } from '../shared/amqp.js';
import type { NodeAddress } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import type { MetadataStore } from '../shared/metadata-store.js';

export interface RepairSweepDeps {
  store: MetadataStore;
  amqp: AmqpClient;
  nodes: NodeAddress[];
  log: Logger;
  schedule: string;
}

const BATCH = 1000;

export class RepairSweep {
  private task: ScheduledTask | undefined;

  constructor(private readonly deps: RepairSweepDeps) {}

  start(): void {
    this.task = cron.schedule(this.deps.schedule, () => this.runSafely(), {
      name: 'repair-sweep',
      noOverlap: true,
    });
  }

  async stop(): Promise<void> {
    await this.task?.stop();
  }

  private async runSafely(): Promise<void> {
    try {
      await this.run();
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'repair sweep failed; next run retries');
    }
  }

  async run(): Promise<void> {
    const { amqp, store } = this.deps;
    for (const node of this.deps.nodes) await amqp.publish(amqp.names.nodeCheck, { node: node.id });
    const unhealthy = await store.unhealthyReplicas(BATCH);
    const keys = new Map(unhealthy.map((r) => [r.key, r.fileId]));
    for (const [key, fileId] of keys) await amqp.publish(amqp.names.replicaRepair, { fileId, key });
    if (keys.size > 0) this.deps.log.info({ repairs: keys.size }, 'repair sweep queued repairs');
  }
}

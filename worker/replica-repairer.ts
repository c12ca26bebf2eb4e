/**
 * Repair: gives each replica row of a blob that is not `ok` a verified copy
 * from a healthy replica (blob-copier.ts: streamed node to node, sha256
 * checked by the target, a copy of a file deleted meanwhile removed at once),
 * at a shared rate limit.
 *
 * One repair or rebalance move per blob at a time: the per-blob Redlock lock
 * (`blobLockKey`), skipped (not waited for) when another worker holds it.
 * Re-running a repair is harmless: rows already `ok` are left alone.
 */
import type { Redis } from 'ioredis';
import type Redlock from 'redlock';
import { repairStatsKey, type ReplicaRepairJob } from '../shared/jobs.js';
import type { LayoutView } from '../shared/layout-watcher.js';
import type { Logger } from '../shared/logger.js';
import { UnavailableError } from '../shared/errors.js';
import type { MetadataStore } from '../shared/metadata-store.js';
import type { NodeClient } from '../shared/node-client.js';
import { BlobCopier } from './blob-copier.js';
import type { ByteRate } from './byte-rate.js';

export interface RepairDeps {
  store: MetadataStore;
  client: NodeClient;
  /** The layout in force: every node, draining ones included. */
  layout: LayoutView;
  redis: Redis;
  redlock: Redlock;
  rate: ByteRate;
  log: Logger;
  /** The cluster's name: prefix of its shared Redis keys. */
  prefix: string;
}

const LOCK_TTL_MS = 10_000;

/** The lock repair and rebalance take on a blob before they change where its replicas are. */
export function blobLockKey(prefix: string, key: string): string {
  return `${prefix}:lock:blob:${key}`;
}

export class ReplicaRepairer {
  private readonly copier: BlobCopier;

  constructor(private readonly deps: RepairDeps) {
    this.copier = new BlobCopier(deps);
  }

  async handle(job: ReplicaRepairJob): Promise<void> {
    const file = await this.deps.store.getFile(job.fileId);
    if (!file || file.state !== 'committed' || file.deletedAt !== null) return; // nothing to keep
    try {
      // Extended while the repair runs: a worker killed in the middle holds the blob LOCK_TTL_MS at most.
      await this.deps.redlock.using(
        [blobLockKey(this.deps.prefix, job.key)],
        LOCK_TTL_MS,
        { retryCount: 0 },
        () => this.repairKey(job.key, job.key === file.id ? file.sha256 : undefined, file.id),
      );
    } catch (err) {
      if ((err as Error).name !== 'ExecutionError') throw err;
      this.deps.log.debug({ key: job.key }, 'repair already under way elsewhere');
    }
  }

  private async repairKey(key: string, expected: string | undefined, fileId: string) {
    const rows = (await this.deps.store.replicasOf(fileId)).filter((r) => r.key === key);
    const targets = rows.filter((r) => r.state !== 'ok');
    if (targets.length === 0) return;
    const sources = rows.filter((r) => r.state === 'ok').map((r) => r.node);
    if (sources.length === 0) {
      throw new Error(`no healthy replica of ${key} to repair from`);
    }
    const down: string[] = [];
    for (const row of targets) {
      const target = this.deps.layout.node(row.node);
      if (!target) continue;
      const copied = await this.copier.copy(key, target, sources, expected, this.deps.rate);
      if (copied === 'target-down') {
        down.push(target.id);
        continue;
      }
      if (!(await this.copier.keep(fileId, key, target))) return;
      await this.deps.redis
        .multi()
        .hincrby(repairStatsKey(this.deps.prefix), 'done', 1)
        .hincrby(repairStatsKey(this.deps.prefix), 'bytes', copied.bytes)
        .exec()
        .catch(() => undefined);
      this.deps.log.info(
        { key, from: copied.from, to: target.id, bytes: copied.bytes },
        'replica repaired',
      );
    }
    // Put off and tried again (job-consumer.ts): a node down for seconds may come back without
    // the gateways seeing it offline, so no anti-entropy pass of its return would bring this back.
    if (down.length > 0)
      throw new UnavailableError(
        `repair target ${down.join(', ')} of ${key} unreachable`,
        'NODE_UNREACHABLE',
      );
  }
}

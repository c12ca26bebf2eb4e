/**
 * Repair: gives each replica row of a blob that is not `ok` a verified copy
 * from a healthy replica, streamed node to node through this worker (never
 * held whole), at a shared rate limit.
 *
 * The target node checks the sha256 while it writes (the expected one is sent
 * along) and stores nothing on a mismatch, so a copy is either right or
 * absent. One repair per blob at a time: a per-key Redlock lock, skipped (not
 * waited for) when another worker holds it. Re-running a repair is harmless:
 * rows already `ok` are left alone.
 */
import type { Redis } from 'ioredis';
import { pipeline } from 'node:stream';
import type Redlock from 'redlock';
import type { NodeAddress } from '../shared/config.js';
import { repairStatsKey, type ReplicaRepairJob } from '../shared/jobs.js';
import type { Logger } from '../shared/logger.js';
import type { MetadataStore, ReplicaRecord } from '../shared/metadata-store.js';
import { H, isUnreachable, type NodeClient } from '../shared/node-client.js';
import type { ByteRate } from './byte-rate.js';

export interface RepairDeps {
  store: MetadataStore;
  client: NodeClient;
  nodes: NodeAddress[];
  redis: Redis;
  redlock: Redlock;
  rate: ByteRate;
  log: Logger;
  /** The cluster's name: prefix of its shared Redis keys. */
  prefix: string;
}

const LOCK_TTL_MS = 60_000;

export class ReplicaRepairer {
  constructor(private readonly deps: RepairDeps) {}

  async handle(job: ReplicaRepairJob): Promise<void> {
    const file = await this.deps.store.getFile(job.fileId);
    if (!file || file.state !== 'committed' || file.deletedAt !== null) return; // nothing to keep
    let lock;
    try {
      lock = await this.deps.redlock.acquire([`trove:lock:repair:${job.key}`], LOCK_TTL_MS, {
        retryCount: 0,
      });
    } catch {
      this.deps.log.debug({ key: job.key }, 'repair already under way elsewhere');
      return;
    }
    try {
      await this.repairKey(job.key, job.key === file.id ? file.sha256 : undefined, file.id);
    } finally {
      await lock.release().catch(() => undefined);
    }
  }

  private async repairKey(key: string, expected: string | undefined, fileId: string) {
    const rows = (await this.deps.store.replicasOf(fileId)).filter((r) => r.key === key);
    const targets = rows.filter((r) => r.state !== 'ok');
    if (targets.length === 0) return;
    const sources = rows.filter((r) => r.state === 'ok');
    if (sources.length === 0) {
      throw new Error(`no healthy replica of ${key} to repair from`);
    }
    for (const target of targets) {
      const node = this.node(target.node);
      if (!node) continue;
      await this.copyTo(key, node, sources, expected);
    }
  }

  /** Copies `key` to `target` from the first source that can serve it; false if none could. */
  private async copyTo(
    key: string,
    target: NodeAddress,
    sources: ReplicaRecord[],
    expected: string | undefined,
  ): Promise<boolean> {
    for (const source of sources) {
      const from = this.node(source.node);
      if (!from) continue;
      let res;
      try {
        res = await this.deps.client.getBlob(from, key);
      } catch (err) {
        if (!isUnreachable(err)) throw err;
        continue;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        if (res.statusCode === 404) await this.deps.store.setReplicaState(key, from.id, 'missing');
        continue;
      }
      const sha256 = expected ?? String(res.headers[H.sha256] ?? '');
      const size = Number(res.headers['content-length']);
      const body = this.deps.rate.throttle();
      pipeline(res.body, body, () => undefined); // a source failing mid-copy fails the PUT
      try {
        const report = await this.deps.client.putBlob(target, key, body, {
          chain: [],
          hop: 0,
          contentLength: size,
          expectedSha256: sha256 || undefined,
        });
        const stored = report.replicas.find((r) => r.node === target.id);
        if (!stored?.ok || stored.sha256 !== sha256) {
          const why = stored && !stored.ok ? stored.error : 'wrong or no report';
          throw new Error(`${target.id} did not store ${key}: ${why}`);
        }
      } catch (err) {
        res.body.destroy();
        if (isUnreachable(err)) {
          // The target is down: its return (nodes.check) or the sweep brings the repair back.
          this.deps.log.info({ key, node: target.id }, 'repair target unreachable, later');
          return false;
        }
        throw err;
      }
      await this.deps.store.setReplicaState(key, target.id, 'ok');
      await this.deps.redis
        .multi()
        .hincrby(repairStatsKey(this.deps.prefix), 'done', 1)
        .hincrby(repairStatsKey(this.deps.prefix), 'bytes', size)
        .exec()
        .catch(() => undefined);
      this.deps.log.info({ key, from: from.id, to: target.id, bytes: size }, 'replica repaired');
      return true;
    }
    throw new Error(`no source could serve ${key} for ${target.id}`);
  }

  private node(id: string): NodeAddress | undefined {
    return this.deps.nodes.find((n) => n.id === id);
  }
}

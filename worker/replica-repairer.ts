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
 *
 * A copy can take longer than a deletion's grace: the file may be deleted
 * while it travels, and its deletion may already have passed the target. So
 * once the copy landed the file is looked up again, and a copy nobody tracks
 * any more is removed at once, never left for the orphan sweep.
 */
import type { Redis } from 'ioredis';
import { pipeline } from 'node:stream';
import type Redlock from 'redlock';
import type { NodeAddress } from '../shared/config.js';
import { repairStatsKey, type ReplicaRepairJob } from '../shared/jobs.js';
import type { Logger } from '../shared/logger.js';
import type { MetadataStore, ReplicaRecord } from '../shared/metadata-store.js';
import { isUnreachable, type NodeClient } from '../shared/node-client.js';
import { H } from '../shared/node-protocol.js';
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
      await this.copyTo(key, node, sources, expected, fileId);
    }
  }

  /** Copies `key` to `target` from the first source that can serve it; false if none could. */
  private async copyTo(
    key: string,
    target: NodeAddress,
    sources: ReplicaRecord[],
    expected: string | undefined,
    fileId: string,
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
      if (!(await this.stillTracked(fileId, key, target.id))) {
        await this.removeUntracked(key, target);
        return false;
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

  /**
   * Whether the copy just written to `node` is still wanted: its file live and
   * its replica row still there. A deletion that starts after this check finds
   * the row and deletes the copy itself.
   */
  private async stillTracked(fileId: string, key: string, node: string): Promise<boolean> {
    const file = await this.deps.store.getFile(fileId);
    if (!file || file.state !== 'committed' || file.deletedAt !== null) return false;
    const rows = await this.deps.store.replicasOf(fileId);
    return rows.some((r) => r.key === key && r.node === node);
  }

  private async removeUntracked(key: string, target: NodeAddress): Promise<void> {
    try {
      await this.deps.client.deleteBlob(target, key);
      this.deps.log.info(
        { key, node: target.id },
        'file deleted while its replica was being repaired; the copy was removed',
      );
    } catch (err) {
      // Still on the node: the orphan sweep of anti-entropy (ORPHAN_GRACE_SECONDS) removes it.
      this.deps.log.warn(
        { key, node: target.id, err: (err as Error).message },
        'could not remove the repaired copy of a deleted file; left to the orphan sweep',
      );
    }
  }

  private node(id: string): NodeAddress | undefined {
    return this.deps.nodes.find((n) => n.id === id);
  }
}

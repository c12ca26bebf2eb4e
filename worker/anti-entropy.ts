/**
 * Anti-entropy for one node (`nodes.check`): its blob listing against the
 * metadata's replica rows for it.
 *
 * - a row `ok` whose blob is absent (a wiped disk, a quarantined corrupt
 *   blob) or has another sha256 → the row becomes `missing`/`corrupt`, and a
 *   repair is queued;
 * - a row not `ok` whose blob is present and right (a node that came back
 *   with its disk) → `ok` again, no copy needed;
 * - a blob no live file owns (no row, an aborted upload, a tombstone) and
 *   older than ORPHAN_GRACE_SECONDS → deleted. The grace keeps uploads in
 *   flight (their rows are written at commit) out of harm's way.
 * - a tus upload's staged file whose upload has no row any more, older than
 *   the same grace → deleted (an upload's own cleanup removes it while its
 *   row exists; this is what a node away through all of that kept).
 */
import type { LayoutView } from '../shared/layout-watcher.js';
import type { NodeAddress } from '../shared/config.js';
import type { NodeCheckJob } from '../shared/jobs.js';
import { isPartKey, uploadIdOfStagingKey } from '../shared/resumable-parts.js';
import { fileIdOf } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import type { MetadataStore } from '../shared/metadata-store.js';
import { isUnreachable, type NodeClient } from '../shared/node-client.js';
import type { ListedBlob } from '../shared/node-protocol.js';

export interface AntiEntropyDeps {
  store: MetadataStore;
  client: NodeClient;
  /** The layout in force: every node, draining ones included. */
  layout: LayoutView;
  log: Logger;
  orphanGraceMs: number;
  /** Queues a repair of blob `key` of file `fileId`. */
  repair(fileId: string, key: string): Promise<void>;
}

export interface CheckReport {
  listed: number;
  missing: number;
  corrupt: number;
  recovered: number;
  orphansRemoved: number;
}

export class AntiEntropy {
  constructor(private readonly deps: AntiEntropyDeps) {}

  async handle(job: NodeCheckJob): Promise<void> {
    const node = this.deps.layout.node(job.node);
    if (!node) return;
    try {
      const report = await this.check(node);
      this.deps.log.info({ node: node.id, ...report }, 'anti-entropy');
    } catch (err) {
      if (isUnreachable(err)) return; // down again; its next return brings a new check
      throw err;
    }
  }

  async check(node: NodeAddress, now = Date.now()): Promise<CheckReport> {
    // Rows first, then the listing: a row committed `ok` before it was read is of a blob already on
    // the disk when the listing starts. Read the other way round, an upload committed while the
    // listing ran looked missing on every node at once, and its downloads failed until repaired.
    const rows = await this.deps.store.replicasOnNode(node.id);
    const listing = await this.listAll(node);
    const report: CheckReport = {
      listed: listing.size,
      missing: 0,
      corrupt: 0,
      recovered: 0,
      orphansRemoved: 0,
    };
    const owned = new Set<string>();
    const repairs: { fileId: string; key: string }[] = [];
    for (const row of rows) {
      if (!row.live) continue; // deletion owns tombstones' rows
      owned.add(row.key);
      const blob = listing.get(row.key);
      // Only an original's sha256 is in the metadata; a variant's presence is what we can check.
      const right = blob && (row.key !== row.fileId || blob.sha256 === row.fileSha256);
      // Rows change while the listing is read (another check of this node queues a repair,
      // the copy lands): a row is changed only if it is still as read, never on a stale listing.
      if (row.state === 'ok' && !right) {
        const state = blob ? 'corrupt' : 'missing';
        if (!(await this.deps.store.setReplicaState(row.key, node.id, state, row))) continue;
        report[state]++;
        repairs.push(row);
      } else if (row.state !== 'ok' && right) {
        if (!(await this.deps.store.setReplicaState(row.key, node.id, 'ok', row))) continue;
        report.recovered++;
      } else if (row.state !== 'ok') {
        repairs.push(row);
      }
    }
    await this.queueRepairs(repairs);
    for (const blob of listing.values()) {
      if (owned.has(blob.key) || now - blob.mtimeMs < this.deps.orphanGraceMs) continue;
      if (await this.isKept(blob.key)) continue;
      await this.deps.client.deleteBlob(node, blob.key);
      report.orphansRemoved++;
    }
    report.orphansRemoved += await this.removeOrphanStaging(node, now);
    return report;
  }

  /** Staged files of uploads that have no row any more; returns how many were deleted. */
  private async removeOrphanStaging(node: NodeAddress, now: number): Promise<number> {
    let removed = 0;
    for (const staged of await this.deps.client.listStaged(node)) {
      if (now - staged.mtimeMs < this.deps.orphanGraceMs) continue;
      const uploadId = uploadIdOfStagingKey(staged.key);
      if (uploadId && (await this.deps.store.getResumable(uploadId))) continue;
      if (await this.deps.client.deleteStaged(node, staged.key)) removed++;
    }
    return removed;
  }

  /**
   * An untracked blob that stays: a pending upload, or an extra copy of a
   * live file (harmless); a resumable upload's part while its row exists
   * (the resumable sweep removes it).
   */
  private async isKept(key: string): Promise<boolean> {
    if (isPartKey(key)) return (await this.deps.store.getPart(key)) !== undefined;
    const file = await this.deps.store.getFile(fileIdOf(key));
    return file !== undefined && file.state !== 'aborted' && file.deletedAt === null;
  }

  /** Publishes in batches: one confirm round trip per batch, not per blob (a wiped node has thousands). */
  private async queueRepairs(rows: { fileId: string; key: string }[]): Promise<void> {
    for (let i = 0; i < rows.length; i += 256) {
      await Promise.all(rows.slice(i, i + 256).map((r) => this.deps.repair(r.fileId, r.key)));
    }
  }

  private async listAll(node: NodeAddress): Promise<Map<string, ListedBlob>> {
    const blobs = new Map<string, ListedBlob>();
    let after: string | undefined;
    do {
      const page = await this.deps.client.listBlobs(node, after, 5000);
      for (const b of page.blobs) blobs.set(b.key, b);
      after = page.next ?? undefined;
    } while (after);
    return blobs;
  }
}

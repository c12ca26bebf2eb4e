/**
 * Deleting a file, in three steps that each may run any number of times:
 *
 * 1. tombstone: a live file whose expiry passed is marked deleted (owner
 *    deletions arrive already marked by the gateway); downloads answer 410;
 * 2. after `graceMs`, so downloads already under way can finish, its blobs
 *    (original and every variant) are deleted from each node that has a
 *    replica row, and each row is dropped once its node confirmed;
 * 3. rows of nodes that were down stay: they are deletes still owed, retried
 *    by the sweep until the node is back. The tombstone itself is purged after
 *    the retention period (expiry-sweep.ts).
 *
 * A job that arrives early (it never should delete early) is sent back down
 * the delay ladder until it is due.
 */
import type { LayoutView } from '../shared/layout-watcher.js';
import type { AmqpClient } from '../shared/amqp.js';
import type { FileDeleteJob } from '../shared/jobs.js';
import type { Logger } from '../shared/logger.js';
import type { FileRecord, MetadataStore } from '../shared/metadata-store.js';
import { isUnreachable, type NodeClient } from '../shared/node-client.js';

export interface DeleterDeps {
  store: MetadataStore;
  client: NodeClient;
  /** The layout in force: every node, draining ones included. */
  layout: LayoutView;
  amqp: AmqpClient;
  log: Logger;
  graceMs: number;
}

export class FileDeleter {
  constructor(private readonly deps: DeleterDeps) {}

  /** The `files.delete` job handler. */
  async handle(job: FileDeleteJob): Promise<void> {
    const now = Date.now();
    if (job.due > now) return this.later(job.fileId, job.due);
    const file = await this.deps.store.getFile(job.fileId);
    if (!file || file.state !== 'committed') {
      this.deps.log.info(
        { id: job.fileId },
        'deletion job for a file that no longer exists, dropped',
      );
      return;
    }
    const deletedAt = await this.tombstone(file, now);
    if (deletedAt === null) return this.later(file.id, file.expiresAt);
    const purgeAt = deletedAt + this.deps.graceMs;
    if (now < purgeAt) return this.later(file.id, purgeAt);
    await this.removeBlobs(file.id);
  }

  /**
   * Marks an expired live file deleted; returns when the file became a
   * tombstone, or null when it is not due (not expired, not deleted).
   */
  async tombstone(file: FileRecord, now = Date.now()): Promise<number | null> {
    if (file.deletedAt !== null) return file.deletedAt;
    if (now < file.expiresAt) return null;
    if (await this.deps.store.markDeleted(file.id, 'expired', now)) {
      this.deps.log.info({ id: file.id }, 'file expired');
      return now;
    }
    // Someone else (another worker, the owner) marked it first: use their time.
    return (await this.deps.store.getFile(file.id))?.deletedAt ?? now;
  }

  /**
   * Deletes every blob of a tombstone from the nodes that hold one. Returns
   * the number of deletes still owed (nodes that could not be reached).
   */
  async removeBlobs(fileId: string): Promise<number> {
    const rows = await this.deps.store.replicasOf(fileId);
    const owed: string[] = [];
    await Promise.all(
      rows.map(async ({ key, node: nodeId }) => {
        const node = this.deps.layout.node(nodeId);
        try {
          // A node no longer in the cluster has nothing to delete.
          if (node) await this.deps.client.deleteBlob(node, key);
          await this.deps.store.forgetReplica(key, nodeId);
        } catch (err) {
          if (!isUnreachable(err)) throw err; // p-retry, then dead-letter; the sweep retries anyway
          owed.push(nodeId);
        }
      }),
    );
    if (owed.length > 0)
      this.deps.log.warn(
        { id: fileId, nodes: owed },
        'nodes down; their deletes are retried by the sweep',
      );
    else if (rows.length > 0)
      this.deps.log.info({ id: fileId, blobs: rows.length }, 'file blobs deleted');
    return owed.length;
  }

  private async later(fileId: string, due: number): Promise<void> {
    await this.deps.amqp.publish(this.deps.amqp.names.fileDelete, { fileId, due }, { due });
  }
}

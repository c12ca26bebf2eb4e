/**
 * A verified node-to-node copy of one blob, streamed through this worker
 * (never held whole) at a shared byte rate: what repair and rebalance both
 * do to give a node its replica.
 *
 * The target checks the sha256 while it writes (the expected one is sent
 * along) and stores nothing on a mismatch, so a copy is either right or
 * absent. A copy can take longer than a deletion's grace: the file may be
 * deleted while it travels, and its deletion may already have passed the
 * target. So `keep` looks the file up again once the copy landed and removes
 * a copy nobody tracks any more at once, never leaving it for the orphan sweep.
 */
import { pipeline } from 'node:stream';
import type { NodeAddress } from '../shared/config.js';
import type { LayoutView } from '../shared/layout-watcher.js';
import type { Logger } from '../shared/logger.js';
import { InsufficientStorageError, UnavailableError } from '../shared/errors.js';
import type { MetadataStore } from '../shared/metadata-store.js';
import { isTransportFailure, isUnreachable, type NodeClient } from '../shared/node-client.js';
import { H } from '../shared/node-protocol.js';
import type { ByteRate } from './byte-rate.js';

export interface BlobCopierDeps {
  store: MetadataStore;
  client: NodeClient;
  layout: LayoutView;
  log: Logger;
}

/** A copy that landed: from which node, how many bytes. */
export interface Copied {
  from: string;
  bytes: number;
}

export class BlobCopier {
  constructor(private readonly deps: BlobCopierDeps) {}

  /**
   * Copies `key` to `target` from the first of `sources` (node ids, in the
   * order to try) that serves it, at `rate`. Resolves with the copy, or
   * `target-down` when the target cannot be reached (try later); throws when
   * no source could serve it. A source found without the blob is recorded
   * `missing` (repair takes it from there).
   */
  async copy(
    key: string,
    target: NodeAddress,
    sources: string[],
    expected: string | undefined,
    rate: ByteRate,
  ): Promise<Copied | 'target-down'> {
    for (const sourceId of sources) {
      const from = this.deps.layout.node(sourceId);
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
      const body = rate.throttle();
      pipeline(res.body, body, () => undefined); // a source failing mid-copy fails the PUT
      try {
        const report = await this.deps.client.putBlob(target, key, body, {
          chain: [],
          hop: 0,
          contentLength: size,
          expectedSha256: sha256 || undefined,
        });
        const stored = report.replicas.find((r) => r.node === target.id);
        if (stored && !stored.ok && stored.code === 'INSUFFICIENT_STORAGE')
          throw new InsufficientStorageError(`${target.id} has no room for ${key}`);
        if (!stored?.ok || stored.sha256 !== sha256) {
          const why = stored && !stored.ok ? stored.error : 'wrong or no report';
          throw new Error(`${target.id} did not store ${key}: ${why}`);
        }
      } catch (err) {
        res.body.destroy();
        if (isUnreachable(err)) return 'target-down';
        // The connection dropped mid-copy (a node killed, cut or restarting): worth another try.
        if (isTransportFailure(err))
          throw new UnavailableError(
            `copy of ${key} to ${target.id} broke off: ${(err as Error).message}`,
          );
        throw err;
      }
      return { from: from.id, bytes: size };
    }
    // Sources down or cut off for now: the job is put off, not dead-lettered.
    throw new UnavailableError(
      `no source could serve ${key} for ${target.id}`,
      'NO_SOURCE_AVAILABLE',
    );
  }

  /**
   * Records the copy of `key` just written to `target` as `ok` if it is still
   * wanted: its file live and its replica row still there. A deletion that
   * starts after this check finds the row and deletes the copy itself.
   * Otherwise the copy is removed now; false.
   */
  async keep(fileId: string, key: string, target: NodeAddress): Promise<boolean> {
    if (await this.stillTracked(fileId, key, target.id)) {
      await this.deps.store.setReplicaState(key, target.id, 'ok');
      return true;
    }
    try {
      await this.deps.client.deleteBlob(target, key);
      this.deps.log.info(
        { key, node: target.id },
        'file deleted while a replica was being copied; the copy was removed',
      );
    } catch (err) {
      // Still on the node: the orphan sweep of anti-entropy (ORPHAN_GRACE_SECONDS) removes it.
      this.deps.log.warn(
        { key, node: target.id, err: (err as Error).message },
        'could not remove the copy of a deleted file; left to the orphan sweep',
      );
    }
    return false;
  }

  private async stillTracked(fileId: string, key: string, node: string): Promise<boolean> {
    const file = await this.deps.store.getFile(fileId);
    if (!file || file.state !== 'committed' || file.deletedAt !== null) return false;
    const rows = await this.deps.store.replicasOf(fileId);
    return rows.some((r) => r.key === key && r.node === node);
  }
}

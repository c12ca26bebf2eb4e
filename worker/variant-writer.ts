/**
 * Chain writes of variants from the worker. The chain is the key's placement
 * over every node, best first: the worker keeps no view of node health, so it
 * tries the chain as it is and lets failures show. A head that cannot be
 * reached or fails mid-write is recorded `missing` and the bytes go to the
 * rest of the chain (a variant is a buffer of at most a 2048 px image, so it
 * can be sent again); a node the chain skipped is recorded `missing` too.
 * Repair later gives the missing ones their copy.
 */
import type { LayoutView } from '../shared/layout-watcher.js';
import { createHash } from 'node:crypto';
import { UnavailableError } from '../shared/errors.js';
import { placementOf } from '../shared/layout.js';
import type { NodeAddress } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import type { ReplicaState } from '../shared/metadata-store.js';
import { isTransportFailure, type NodeClient } from '../shared/node-client.js';

export interface VariantWriterDeps {
  client: NodeClient;
  /** The layout in force: where each key's replicas belong. */
  layout: LayoutView;
  /** Copies to place (REPLICATION_FACTOR). */
  copies: number;
  /** Copies that must be stored, or the write fails and is retried (WRITE_QUORUM). */
  quorum: number;
  log: Logger;
}

export interface StoredBlob {
  sha256: string;
  size: number;
  replicas: { node: string; state: ReplicaState }[];
}

export class VariantWriter {
  constructor(private readonly deps: VariantWriterDeps) {}

  /** Stores `data` under `key` on its chain; throws when fewer than a quorum of nodes stored it. */
  async write(key: string, data: Buffer, signal?: AbortSignal): Promise<StoredBlob> {
    const sha256 = createHash('sha256').update(data).digest('hex');
    const chain: NodeAddress[] = placementOf(key, this.deps.layout.nodes(), this.deps.copies);
    const stored = await this.sendDown(key, chain, data, sha256, signal);
    if (stored.size < this.deps.quorum) {
      // Nodes down or full for now: a 503, so the job is put off rather than dead-lettered.
      throw new UnavailableError(
        `only ${stored.size} of ${chain.length} storage nodes stored ${key}; ${this.deps.quorum} are needed`,
        'WRITE_QUORUM_FAILED',
      );
    }
    return {
      sha256,
      size: data.length,
      replicas: chain.map((n) => ({ node: n.id, state: stored.has(n.id) ? 'ok' : 'missing' })),
    };
  }

  /** The nodes of `chain` that stored exactly `data`, trying each next node as head if the head fails. */
  private async sendDown(
    key: string,
    chain: NodeAddress[],
    data: Buffer,
    sha256: string,
    signal: AbortSignal | undefined,
  ): Promise<Set<string>> {
    const stored = new Set<string>();
    for (let i = 0; i < chain.length; i++) {
      const head = chain[i]!;
      try {
        const report = await this.deps.client.putBlob(head, key, data, {
          chain: chain.slice(i + 1),
          hop: 0,
          contentLength: data.length,
          expectedSha256: sha256,
          signal,
        });
        for (const o of report.replicas)
          if (o.ok && o.sha256 === sha256 && o.size === data.length) stored.add(o.node);
        return stored;
      } catch (err) {
        if (signal?.aborted || !isTransportFailure(err)) throw err;
        this.deps.log.warn(
          { key, node: head.id, err: (err as Error).message },
          'variant write: chain head failed, sending to the rest of the chain',
        );
      }
    }
    return stored;
  }
}

/**
 * Replicated writes and deletes, from the gateway's side.
 *
 * A write goes to the head of the object's chain with the rest of the chain in
 * a header; the nodes pass it along and answer with one outcome per node. A
 * head that refuses the connection has read none of the stream yet, so the
 * same stream is offered to the next node (see `lazyBody`).
 */
import type { Readable } from 'node:stream';
import type { NodeAddress } from '../shared/config.js';
import { UnavailableError } from '../shared/errors.js';
import type { ReplicaState } from '../shared/metadata-store.js';
import {
  isTransportFailure,
  isUnreachable,
  type NodeClient,
  type ReplicaOutcome,
} from '../shared/node-client.js';
import { lazyBody } from '../shared/streams.js';
import type { NodeRegistry } from './node-registry.js';
import { writeChain } from '../shared/placement.js';

export interface ReplicatorDeps {
  client: NodeClient;
  registry: NodeRegistry;
  nodes: NodeAddress[];
  copies: number;
  quorum: number;
}

export class Replicator {
  constructor(private readonly deps: ReplicatorDeps) {}

  /** The chain a new object would be written to now; throws 503 when it cannot reach a quorum. */
  chainFor(key: string): NodeAddress[] {
    const { registry, nodes, copies, quorum } = this.deps;
    const chain = writeChain(
      key,
      nodes.filter((n) => registry.isOnline(n.id)),
      copies,
    );
    if (chain.length < quorum) {
      throw new UnavailableError(
        `only ${chain.length} storage node(s) online; an upload needs ${quorum}`,
        'NOT_ENOUGH_NODES',
      );
    }
    return chain;
  }

  /**
   * Streams `body` down `chain`. Returns one outcome per node of the chain;
   * throws only when no byte could be placed or the stream itself failed.
   */
  async write(
    key: string,
    chain: NodeAddress[],
    body: Readable,
    o: { contentLength?: number; expectedSha256?: string; signal?: AbortSignal },
  ): Promise<ReplicaOutcome[]> {
    const refused: ReplicaOutcome[] = [];
    for (let i = 0; i < chain.length; i++) {
      const head = chain[i]!;
      const attempt = lazyBody(body);
      try {
        const report = await this.deps.client.putBlob(head, key, attempt.body, {
          chain: chain.slice(i + 1),
          hop: 0,
          contentLength: o.contentLength,
          expectedSha256: o.expectedSha256,
          signal: o.signal,
        });
        this.deps.registry.reportSuccess(head.id);
        return [...refused, ...report.replicas];
      } catch (err) {
        // A head that fails mid-stream is suspect too (unless it was our client who left).
        if (
          isTransportFailure(err) &&
          !o.signal?.aborted &&
          (attempt.started() || isUnreachable(err))
        )
          this.deps.registry.reportFailure(head.id, err);
        if (attempt.started() || !isTransportFailure(err)) throw err;
        refused.push({ node: head.id, ok: false, error: (err as Error).message });
      }
    }
    throw new UnavailableError('no storage node accepted the upload', 'NOT_ENOUGH_NODES');
  }

  /**
   * Replica states to record for a write: every chain node (ok or missing),
   * plus, when the chain was shorter than `copies` (nodes offline), the
   * best-ranked nodes left out of it as missing, so repair knows where copies belong.
   */
  placementOutcome(
    key: string,
    chain: NodeAddress[],
    stored: Set<string>,
  ): { node: string; state: ReplicaState }[] {
    const states = chain.map((n) => ({
      node: n.id,
      state: (stored.has(n.id) ? 'ok' : 'missing') as ReplicaState,
    }));
    const inChain = new Set(chain.map((n) => n.id));
    const leftOut = writeChain(key, this.deps.nodes, this.deps.nodes.length).filter(
      (n) => !inChain.has(n.id),
    );
    for (const node of leftOut.slice(0, Math.max(0, this.deps.copies - states.length))) {
      states.push({ node: node.id, state: 'missing' });
    }
    return states;
  }

  /** Deletes `key` from `nodes` (default: all); resolves with the nodes that could not be reached. */
  async deleteFrom(key: string, nodes: NodeAddress[] = this.deps.nodes): Promise<string[]> {
    const failed: string[] = [];
    await Promise.all(
      nodes.map(async (node) => {
        try {
          await this.deps.client.deleteBlob(node, key);
        } catch (err) {
          if (isUnreachable(err)) this.deps.registry.reportFailure(node.id, err);
          failed.push(node.id);
        }
      }),
    );
    return failed;
  }
}

/**
 * Replicated writes and deletes, from the gateway's side.
 *
 * A write goes to the head of the object's chain with the rest of the chain in
 * a header; the nodes pass it along and answer with one outcome per node. A
 * head that refuses the connection has read none of the stream yet, so the
 * same stream is offered to the next node (see `lazyBody`). A head that fails
 * after reading some of it is a `ChainHeadFailedError`: the caller replays
 * the bytes from its spool with `rewrite`.
 */
import type { Readable } from 'node:stream';
import type { NodeAddress } from '../../shared/config.js';
import { UnavailableError } from '../../shared/errors.js';
import type { ReplicaState } from '../../shared/metadata-store.js';
import { isTransportFailure, isUnreachable, type NodeClient } from '../../shared/node-client.js';
import type { ReplicaOutcome } from '../../shared/node-protocol.js';
import { lazyBody } from '../../shared/streams.js';
import type { NodeRegistry } from './node-registry.js';
import { activeNodes, placementOf, placementOrder } from '../../shared/layout.js';
import type { LayoutView } from '../../shared/layout-watcher.js';

/**
 * The head of a write failed (connection reset, closed) after it had started
 * reading the body: those bytes are spent, but another node may well take a
 * copy from a replay. A 503 if it reaches the client, never a bodyless answer.
 */
export class ChainHeadFailedError extends UnavailableError {
  constructor(
    readonly node: string,
    cause: Error,
  ) {
    super(`storage node ${node} failed while storing the upload`, 'CHAIN_HEAD_FAILED', { cause });
  }
}

/** Options of a replicated write. */
export interface WriteOptions {
  contentLength?: number;
  expectedSha256?: string;
  signal?: AbortSignal;
  /** A part of staged upload `key` at this offset (a tus PATCH), not a blob. */
  offset?: number;
}

export interface ReplicatorDeps {
  client: NodeClient;
  registry: NodeRegistry;
  /** The layout in force: where each key's replicas belong. */
  layout: LayoutView;
  copies: number;
  quorum: number;
  /**
   * How long a write waits on a chain whose node further down went offline
   * before it is replayed without it: the head usually reports that node
   * failed first (NODE_TIMEOUT_MS).
   */
  offlineGraceMs: number;
  /** Called when a write's replicas are not where the layout places them (the rebalance moves them). */
  offPlacement?: () => void;
}

/**
 * Replicated writes and deletes as uploads use them (see Replicator, which
 * run.ts passes; a test may pass a fake).
 */
export interface Replication {
  chainFor(key: string, exclude?: ReadonlySet<string>): NodeAddress[];
  write(
    key: string,
    chain: NodeAddress[],
    body: Readable,
    o: WriteOptions,
  ): Promise<ReplicaOutcome[]>;
  rewrite(
    placementKey: string,
    key: string,
    open: () => Readable,
    failed: Set<string>,
    reached: Set<NodeAddress>,
    o: WriteOptions,
  ): Promise<{ chain: NodeAddress[]; outcomes: ReplicaOutcome[] }>;
  placementOutcome(
    key: string,
    chain: NodeAddress[],
    stored: Set<string>,
  ): { node: string; state: ReplicaState }[];
  deleteFrom(key: string, nodes?: NodeAddress[]): Promise<string[]>;
}

export class Replicator implements Replication {
  constructor(private readonly deps: ReplicatorDeps) {}

  /**
   * The chain a new object would be written to now, without the nodes in
   * `exclude`: online nodes, best first, then (only when those cannot make a
   * quorum) suspect ones; throws 503 when even that cannot reach a quorum.
   */
  chainFor(key: string, exclude: ReadonlySet<string> = new Set()): NodeAddress[] {
    const { registry, layout, copies, quorum } = this.deps;
    // The placement over the nodes that can take it now: distinct zones, by weight.
    const usable = activeNodes(layout.nodes()).filter((n) => !exclude.has(n.id));
    const chain = placementOrder(
      key,
      usable.filter((n) => registry.isOnline(n.id)),
    ).slice(0, copies);
    if (chain.length < quorum) {
      // Suspect is one failed probe or request: on a loaded machine a probe times out on a
      // node that is up. Rather than refuse the upload, try them after the online ones: one
      // that is really down costs a refused connection, and the answer is the same 503.
      const suspect = usable.filter((n) => registry.status(n.id) === 'suspect');
      chain.push(...placementOrder(key, suspect).slice(0, copies - chain.length));
    }
    if (chain.length < quorum) {
      const failed = exclude.size > 0 ? ` besides ${[...exclude].join(', ')} (failed)` : '';
      throw new UnavailableError(
        `only ${chain.length} storage node(s) online or suspect${failed}; an upload needs ${quorum}`,
        'NOT_ENOUGH_NODES',
      );
    }
    return chain;
  }

  /**
   * Streams `body` down `chain`. Returns one outcome per node of the chain;
   * throws only when no byte could be placed (503), the head failed
   * mid-stream (`ChainHeadFailedError`), or the stream itself failed.
   */
  async write(
    key: string,
    chain: NodeAddress[],
    body: Readable,
    o: WriteOptions,
  ): Promise<ReplicaOutcome[]> {
    const refused: ReplicaOutcome[] = [];
    for (let i = 0; i < chain.length; i++) {
      const head = chain[i]!;
      const attempt = lazyBody(body);
      const down = this.watchChain(chain.slice(i));
      try {
        const report = await this.deps.client.putBlob(head, key, attempt.body, {
          chain: chain.slice(i + 1),
          hop: 0,
          contentLength: o.contentLength,
          expectedSha256: o.expectedSha256,
          signal: o.signal ? AbortSignal.any([o.signal, down.signal]) : down.signal,
          offset: o.offset,
        });
        this.deps.registry.reportSuccess(head.id);
        return [...refused, ...report.replicas];
      } catch (err) {
        // A node of the chain went down while it held the write (cut off: its connection
        // hangs rather than fails): the bytes go again, from the spool, to the others.
        if (down.node && !o.signal?.aborted)
          throw new ChainHeadFailedError(down.node, err as Error);
        const headFailed = isTransportFailure(err) && !o.signal?.aborted;
        // A head that fails mid-stream is suspect too (unless it was our client who left).
        if (headFailed && (attempt.started() || isUnreachable(err)))
          this.deps.registry.reportFailure(head.id, err);
        if (attempt.started() && headFailed) throw new ChainHeadFailedError(head.id, err as Error);
        if (attempt.started() || !isTransportFailure(err)) throw err;
        refused.push({ node: head.id, ok: false, error: (err as Error).message });
      } finally {
        down.dispose();
      }
    }
    throw new UnavailableError('no storage node accepted the upload', 'NOT_ENOUGH_NODES');
  }

  /**
   * Aborts (`signal`) when a node of `chain` turns offline while a write to
   * it is pending, naming the node: a node cut off from the network does not
   * refuse or reset, its connections hang, and the write would wait for the
   * commit timeout (minutes) instead of the few seconds the probes take to
   * see it. The head at once; a node further down after `offlineGraceMs`,
   * since its predecessor usually reports it failed by then, sparing a
   * replay. Suspect is not enough: one slow probe would cost a replay.
   */
  private watchChain(chain: NodeAddress[]): {
    signal: AbortSignal;
    node: string | undefined;
    dispose(): void;
  } {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const abort = (id: string) => {
      watch.node = id;
      controller.abort(new Error(`storage node ${id} went offline during the write`));
    };
    const unsubscribe = this.deps.registry.onStatusChange((id, status) => {
      const at = chain.findIndex((n) => n.id === id);
      if (status !== 'offline' || at < 0 || watch.node || timer) return;
      if (at === 0) abort(id);
      else timer = setTimeout(() => abort(id), this.deps.offlineGraceMs);
    });
    const watch = {
      signal: controller.signal,
      node: undefined as string | undefined,
      dispose: () => {
        clearTimeout(timer);
        unsubscribe();
      },
    };
    return watch;
  }

  /**
   * Writes bytes that can be read again from the start (`open`: the gateway's
   * spool) to the chain of `placementKey` without the nodes in `failed`. A
   * head that fails mid-stream joins `failed` and the bytes go afresh to the
   * rest, until fewer than a quorum are left (503). `failed` is the request's
   * own record, not the registry: the registry learns of a failure a Redis
   * round trip later, and until then it still offers the node that just
   * failed, on keep-alive connections whose reset has not been read yet.
   * Every node offered the bytes is added to `reached`, for a cleanup.
   */
  async rewrite(
    placementKey: string,
    key: string,
    open: () => Readable,
    failed: Set<string>,
    reached: Set<NodeAddress>,
    o: WriteOptions,
  ): Promise<{ chain: NodeAddress[]; outcomes: ReplicaOutcome[] }> {
    for (;;) {
      const chain = this.chainFor(placementKey, failed);
      for (const n of chain) reached.add(n);
      const body = open();
      try {
        return { chain, outcomes: await this.write(key, chain, body, o) };
      } catch (err) {
        if (!(err instanceof ChainHeadFailedError)) throw err;
        failed.add(err.node);
      } finally {
        body.destroy(); // a body no node started reading still holds its file open
      }
    }
  }

  /**
   * Replica states to record for a write: every chain node (ok or missing),
   * plus, when the chain was shorter than `copies` (nodes offline), the
   * placement's nodes left out of it as missing, so repair knows where copies belong.
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
    const leftOut = placementOf(key, this.deps.layout.nodes(), this.deps.copies).filter(
      (n) => !inChain.has(n.id),
    );
    for (const node of leftOut.slice(0, Math.max(0, this.deps.copies - states.length))) {
      states.push({ node: node.id, state: 'missing' });
    }
    // A node of the placement offline (a copy went elsewhere) or a newer layout meanwhile.
    const placed = new Set(
      placementOf(key, this.deps.layout.nodes(), this.deps.copies).map((n) => n.id),
    );
    if (states.some((s) => !placed.has(s.node))) this.deps.offPlacement?.();
    return states;
  }

  /** Deletes `key` from `nodes` (default: all of the layout); resolves with the nodes that could not be reached. */
  async deleteFrom(
    key: string,
    nodes: NodeAddress[] = this.deps.layout.nodes(),
  ): Promise<string[]> {
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

/**
 * Which replicas a read tries, in what order.
 *
 * A download holds its node connection for the client's whole transfer, so
 * reads go where the fewest are in flight: healthy online replicas sorted by
 * this gateway's reads in flight to each, ties broken by placement order (a
 * quiet cluster still reads from the placement-first replica, whose page
 * cache is warm). Then the existing fallbacks: healthy replicas on nodes not
 * online (suspect: a blip may be over), then online nodes whose copy is
 * recorded `missing` (a state can lag behind the disk; a node answers 404
 * for a blob it lacks, and every read is checked by sha256, so trying costs
 * one request).
 *
 * A node with every read connection busy is left out of the order and listed
 * apart: a read there would be refused anyway, and when it is all there is,
 * the gateway answers 503 at once instead of queueing.
 */
import type { NodeAddress } from '../../shared/config.js';
import type { ReplicaRecord, ReplicaState } from '../../shared/metadata-store.js';

/** What the order depends on besides placement: health and this gateway's reads in flight. */
export interface ReadLoad {
  isOnline(id: string): boolean;
  /** Reads in flight to the node from this gateway. */
  readsInFlight(node: NodeAddress): number;
  /** Every read connection to the node is busy. */
  readsFull(node: NodeAddress): boolean;
}

/** A replica row of the blob: the node that holds it and its recorded state. */
export type ReplicaRow = Pick<ReplicaRecord, 'node' | 'state'>;

export interface ReadOrder {
  /** Nodes to try, best first. */
  nodes: NodeAddress[];
  /** Nodes that would serve but have no read connection free, in the same order. */
  busy: NodeAddress[];
}

/** The read order of a blob placed as `placed` (rendezvous order), given its replica rows and the current load. */
export function readOrder(
  placed: readonly NodeAddress[],
  replicas: readonly ReplicaRow[],
  load: ReadLoad,
): ReadOrder {
  const holding = (state: ReplicaState) => {
    const nodes = new Set(replicas.filter((r) => r.state === state).map((r) => r.node));
    return placed.filter((n) => nodes.has(n.id));
  };
  const healthy = holding('ok');
  const online = (n: NodeAddress) => load.isOnline(n.id);
  // Array.prototype.sort is stable: equal loads keep placement order.
  const leastLoaded = healthy
    .filter(online)
    .map((node) => ({ node, reads: load.readsInFlight(node) }))
    .sort((a, b) => a.reads - b.reads)
    .map((x) => x.node);
  const candidates = [
    ...leastLoaded,
    ...healthy.filter((n) => !online(n)),
    ...holding('missing').filter(online),
  ];
  return {
    nodes: candidates.filter((n) => !load.readsFull(n)),
    busy: candidates.filter((n) => load.readsFull(n)),
  };
}

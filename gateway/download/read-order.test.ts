import { describe, expect, it } from 'vitest';
import type { NodeAddress } from '../../shared/config.js';
import { readOrder, type ReadLoad, type ReplicaRow } from './read-order.js';

const node = (id: string): NodeAddress => ({ id, url: `http://${id}` });
/** Placement order of the blob in every case: a, b, c, d. */
const PLACED = ['a', 'b', 'c', 'd'].map(node);
const ok = (...ids: string[]): ReplicaRow[] => ids.map((id) => ({ node: id, state: 'ok' }));

/** Every node online and idle, but for what `o` says; `limit` reads make a node full. */
function load(
  o: { offline?: string[]; reads?: Record<string, number>; limit?: number } = {},
): ReadLoad {
  const reads = (n: NodeAddress) => o.reads?.[n.id] ?? 0;
  return {
    isOnline: (id) => !o.offline?.includes(id),
    readsInFlight: reads,
    readsFull: (n) => o.limit !== undefined && reads(n) >= o.limit,
  };
}

const ids = (nodes: NodeAddress[]) => nodes.map((n) => n.id);

describe('readOrder', () => {
  it('keeps placement order on a quiet cluster, so the placement-first replica serves', () => {
    const order = readOrder(PLACED, ok('c', 'a', 'b'), load());
    expect(ids(order.nodes)).toEqual(['a', 'b', 'c']);
    expect(order.busy).toEqual([]);
  });

  it('puts the replica with the fewest reads in flight first, ties in placement order', () => {
    const order = readOrder(PLACED, ok('a', 'b', 'c'), load({ reads: { a: 2, b: 1, c: 1 } }));
    expect(ids(order.nodes)).toEqual(['b', 'c', 'a']);
  });

  it('spreads successive reads over every replica, as each one counts', () => {
    const reads: Record<string, number> = {};
    const chosen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const first = readOrder(PLACED, ok('a', 'b', 'c'), load({ reads })).nodes[0]!;
      chosen.push(first.id);
      reads[first.id] = (reads[first.id] ?? 0) + 1;
    }
    expect(chosen).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('tries online replicas by load, then healthy ones on nodes not online, then online `missing` ones', () => {
    const replicas: ReplicaRow[] = [
      ...ok('a', 'b', 'c'),
      { node: 'd', state: 'missing' },
      { node: 'x', state: 'ok' }, // a node no longer in the cluster: never asked
    ];
    const order = readOrder(PLACED, replicas, load({ offline: ['a'], reads: { b: 3, a: 0 } }));
    expect(ids(order.nodes)).toEqual(['c', 'b', 'a', 'd']);
  });

  it('never asks for a replica recorded `missing` on a node that is not online, nor a `corrupt` one', () => {
    const replicas: ReplicaRow[] = [
      { node: 'a', state: 'missing' },
      { node: 'b', state: 'corrupt' },
      ...ok('c'),
    ];
    const order = readOrder(PLACED, replicas, load({ offline: ['a'] }));
    expect(ids(order.nodes)).toEqual(['c']);
  });

  it('leaves full nodes out of the order and lists them apart, in order', () => {
    const order = readOrder(PLACED, ok('a', 'b', 'c'), load({ limit: 2, reads: { a: 2, c: 2 } }));
    expect(ids(order.nodes)).toEqual(['b']);
    expect(ids(order.busy)).toEqual(['a', 'c']);
  });

  it('has no node to try when every replica is full: the caller answers 503 at once', () => {
    const order = readOrder(
      PLACED,
      ok('a', 'b', 'c'),
      load({ limit: 1, reads: { a: 1, b: 1, c: 1 } }),
    );
    expect(order.nodes).toEqual([]);
    expect(ids(order.busy)).toEqual(['a', 'b', 'c']);
  });
});

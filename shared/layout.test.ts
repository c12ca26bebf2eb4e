import { describe, expect, it } from 'vitest';
import {
  layoutWarnings,
  placementOf,
  placementOrder,
  seedLayout,
  zonesWanted,
  type LayoutNode,
} from './layout.js';

const node = (id: string, zone: string, weight = 1, role: LayoutNode['role'] = 'active') => ({
  id,
  url: `http://${id}:9000`,
  zone,
  weight,
  role,
});
const keys = Array.from({ length: 6000 }, (_, i) => `key-${i}`);
const ids = (nodes: LayoutNode[]) => nodes.map((n) => n.id);

function countFirst(nodes: LayoutNode[], copies: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const key of keys)
    for (const n of placementOf(key, nodes, copies)) counts.set(n.id, (counts.get(n.id) ?? 0) + 1);
  return counts;
}

describe('placement', () => {
  it('is deterministic whatever the order of the nodes', () => {
    const nodes = [node('a1', 'a'), node('a2', 'a'), node('b1', 'b'), node('c1', 'c')];
    for (const key of keys.slice(0, 200))
      expect(ids(placementOrder(key, nodes))).toEqual(ids(placementOrder(key, nodes.reverse())));
  });

  it('puts the replicas in distinct zones when there are enough zones', () => {
    // Three nodes on two machines, plus a third machine: never two copies on one machine.
    const nodes = [
      node('n1', 'hostA'),
      node('n2', 'hostA'),
      node('n3', 'hostB'),
      node('n4', 'hostC'),
    ];
    for (const key of keys) {
      const zones = placementOf(key, nodes, 3).map((n) => n.zone);
      expect(new Set(zones).size).toBe(3);
    }
  });

  it('spreads over as many zones as there are when there are fewer than replicas', () => {
    const nodes = [node('n1', 'hostA'), node('n2', 'hostA'), node('n3', 'hostB')];
    for (const key of keys.slice(0, 500)) {
      const placed = placementOf(key, nodes, 3);
      expect(placed).toHaveLength(3);
      expect(new Set(placed.map((n) => n.zone))).toEqual(new Set(['hostA', 'hostB']));
    }
    expect(zonesWanted(nodes, 3)).toBe(2);
    expect(layoutWarnings(nodes, 3)[0]).toMatch(/only 2 zone/);
    expect(layoutWarnings(seedLayout(nodes).nodes, 3)).toEqual([]);
  });

  it('gives each node a share of the data in proportion to its weight', () => {
    const nodes = [node('n1', 'a', 1), node('n2', 'b', 2), node('n3', 'c', 1), node('n4', 'd', 4)];
    const counts = countFirst(nodes, 1);
    const total = keys.length;
    for (const n of nodes) expect(counts.get(n.id)! / total).toBeCloseTo(n.weight / 8, 1);
  });

  it('leaves draining nodes out of new placements', () => {
    const nodes = [
      node('n1', 'a'),
      node('n2', 'b'),
      node('n3', 'c'),
      node('n4', 'd', 1, 'draining'),
    ];
    expect(countFirst(nodes, 3).get('n4')).toBeUndefined();
  });

  it('moves about a quarter of the replicas when a fourth equal node joins', () => {
    const three = [node('n1', 'a'), node('n2', 'b'), node('n3', 'c')];
    const four = [...three, node('n4', 'd')];
    let moved = 0;
    for (const key of keys) {
      const before = new Set(ids(placementOf(key, three, 3)));
      const after = ids(placementOf(key, four, 3));
      const gained = after.filter((id) => !before.has(id));
      // Only ever onto the new node, never between the old ones.
      expect(gained.every((id) => id === 'n4')).toBe(true);
      moved += gained.length;
    }
    expect(moved / (keys.length * 3)).toBeGreaterThan(0.22);
    expect(moved / (keys.length * 3)).toBeLessThan(0.28);
  });

  it('moves only the replicas of a drained node, each to one other node', () => {
    const nodes = [node('n1', 'a'), node('n2', 'b'), node('n3', 'c'), node('n4', 'd')];
    const drained = nodes.map((n) => (n.id === 'n2' ? { ...n, role: 'draining' as const } : n));
    for (const key of keys.slice(0, 1000)) {
      const before = ids(placementOf(key, nodes, 3));
      const after = ids(placementOf(key, drained, 3));
      const kept = before.filter((id) => id !== 'n2');
      expect(after.filter((id) => kept.includes(id))).toHaveLength(kept.length);
    }
  });
});

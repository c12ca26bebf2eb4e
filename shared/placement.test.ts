import { describe, expect, it } from 'vitest';
import { rankNodes, writeChain } from './placement.js';

const nodes = ['node1', 'node2', 'node3', 'node4'].map((id) => ({ id, url: `http://${id}` }));

describe('placement', () => {
  it('is deterministic and uses every node', () => {
    expect(rankNodes('abc', nodes)).toEqual(rankNodes('abc', [...nodes].reverse()));
    expect(new Set(rankNodes('abc', nodes).map((n) => n.id)).size).toBe(4);
  });

  it('spreads heads evenly', () => {
    const heads = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const head = rankNodes(`key-${i}`, nodes)[0]!.id;
      heads.set(head, (heads.get(head) ?? 0) + 1);
    }
    for (const count of heads.values()) expect(count).toBeGreaterThan(800);
  });

  it('moves only the objects of a removed node', () => {
    const without = nodes.filter((n) => n.id !== 'node2');
    for (let i = 0; i < 500; i++) {
      const key = `key-${i}`;
      const before = writeChain(key, nodes, 2).map((n) => n.id);
      const after = writeChain(key, without, 2).map((n) => n.id);
      // Survivors of the old chain keep their order at the front of the new one.
      expect(after.slice(0, before.filter((id) => id !== 'node2').length)).toEqual(
        before.filter((id) => id !== 'node2'),
      );
    }
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LayoutChangeError, addNode, drainNode } from './layout-changes.js';
import { LayoutConflictError, changeLayout, ensureLayout } from './layout-store.js';
import { SqliteMetadataStore, openDatabase } from './sqlite-metadata-store.js';

const NODES = [
  { id: 'node1', url: 'http://10.0.0.1:9001' },
  { id: 'node2', url: 'http://10.0.0.2:9001' },
];

let dir: string;
let store: SqliteMetadataStore;
let other: SqliteMetadataStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trove-layout-'));
  store = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
  other = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
});
afterEach(async () => {
  await store.close();
  await other.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ensureLayout', () => {
  it('seeds version 1 from NODES once, and reads it from then on', async () => {
    const [a, b] = await Promise.all([ensureLayout(store, NODES), ensureLayout(other, NODES)]);
    expect(a).toEqual(b);
    expect(a.version).toBe(1);
    expect(a.nodes).toEqual([
      { id: 'node1', url: 'http://10.0.0.1:9001', zone: 'node1', weight: 1, role: 'active' },
      { id: 'node2', url: 'http://10.0.0.2:9001', zone: 'node2', weight: 1, role: 'active' },
    ]);
    expect(a.note).toBe('seeded from NODES (node1, node2)');
    // NODES changed later seeds nothing: the stored layout is the truth.
    expect(await ensureLayout(store, [{ id: 'x', url: 'http://x:1' }])).toEqual(a);
    expect(await store.layoutHistory(5)).toHaveLength(1);
  });
});

describe('changeLayout', () => {
  const add4 = { id: 'node4', url: 'http://10.0.0.4:9001', zone: 'b', weight: 2 };

  it('saves a change as the next version, with its note', async () => {
    const next = await changeLayout(store, NODES, (l) => addNode(l.nodes, add4));
    expect(next.version).toBe(2);
    expect(next.note).toBe('add node4 (http://10.0.0.4:9001, zone b, weight 2)');
    expect(await other.currentLayout()).toEqual(next);
  });

  it('applies a change again on top of one that was saved while it was being made', async () => {
    let calls = 0;
    const next = await changeLayout(store, NODES, (l) => {
      // The first time, another process saves its own change in between.
      if (calls++ === 0)
        void other.saveLayout({ ...l, version: l.version + 1, ...drainNode(l.nodes, 'node2') });
      return addNode(l.nodes, add4);
    });
    expect(calls).toBe(2);
    expect(next.version).toBe(3);
    expect(next.nodes.map((n) => [n.id, n.role])).toEqual([
      ['node1', 'active'],
      ['node2', 'draining'],
      ['node4', 'active'],
    ]);
  });

  it('gives up after a few lost races, and refuses what the change refuses', async () => {
    const busy = changeLayout(store, NODES, (l) => {
      void other.saveLayout({ ...l, version: l.version + 1, note: 'someone else' });
      return addNode(l.nodes, add4);
    });
    await expect(busy).rejects.toBeInstanceOf(LayoutConflictError);
    const before = await store.currentLayout();
    await expect(changeLayout(store, NODES, (l) => drainNode(l.nodes, 'nope'))).rejects.toThrow(
      LayoutChangeError,
    );
    await expect(
      changeLayout(store, NODES, (l) => ({
        nodes: [...l.nodes, { ...l.nodes[0]!, url: 'http://10.0.0.5:9001' }],
        note: 'a twin',
      })),
    ).rejects.toMatchObject({ code: 'INVALID_LAYOUT' });
    expect(await store.currentLayout()).toEqual(before);
  });
});

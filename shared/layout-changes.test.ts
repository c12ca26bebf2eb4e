import { describe, expect, it } from 'vitest';
import {
  LayoutChangeError,
  addNode,
  drainNode,
  removeNode,
  setNode,
  undrainNode,
} from './layout-changes.js';
import { seedLayout, type LayoutNode } from './layout.js';

const seed = seedLayout([
  { id: 'node1', url: 'http://10.0.0.1:9001' },
  { id: 'node2', url: 'http://10.0.0.2:9001' },
]).nodes;

/** The error `fn` throws; fails the test if it returns. */
function refusal(fn: () => unknown): LayoutChangeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LayoutChangeError);
    return err as LayoutChangeError;
  }
  throw new Error('expected a LayoutChangeError');
}

const node = (nodes: LayoutNode[], id: string) => nodes.find((n) => n.id === id);

describe('addNode', () => {
  it('adds an active node, in a zone named after it and weight 1 unless told', () => {
    const plain = addNode(seed, { id: 'node3', url: 'http://10.0.0.3:9001/' });
    expect(node(plain.nodes, 'node3')).toEqual({
      id: 'node3',
      url: 'http://10.0.0.3:9001',
      zone: 'node3',
      weight: 1,
      role: 'active',
    });
    expect(plain.note).toBe('add node3 (http://10.0.0.3:9001, zone node3, weight 1)');
    const placed = addNode(seed, { id: 'big', url: 'http://10.0.0.9:9001', zone: 'b', weight: 4 });
    expect(node(placed.nodes, 'big')).toMatchObject({ zone: 'b', weight: 4 });
    expect(seed).toHaveLength(2); // the input is left as it was
  });

  it('refuses an id or a url already in the layout', () => {
    const id = refusal(() => addNode(seed, { id: 'node2', url: 'http://10.0.0.7:9001' }));
    expect(id).toMatchObject({ code: 'NODE_EXISTS', status: 409 });
    expect(id.message).toMatch(/node "node2" is already in the layout; change it with/);
    const url = refusal(() => addNode(seed, { id: 'node3', url: 'http://10.0.0.2:9001/' }));
    expect(url.message).toBe('http://10.0.0.2:9001 is already node "node2": one node, one url');
  });

  it('refuses values a layout cannot hold, naming the node and the field', () => {
    const err = refusal(() =>
      addNode(seed, { id: 'node3', url: 'ftp://x', zone: 'a b', weight: 0 }),
    );
    expect(err).toMatchObject({ code: 'INVALID_LAYOUT', status: 400 });
    expect(err.message).toMatch(/node3 url: a node url is http\(s\):\/\/host:port/);
    expect(err.message).toMatch(/node3 zone: a zone is 1-64 of/);
    expect(err.message).toMatch(/node3 weight:/);
    expect(refusal(() => addNode(seed, { id: 'no/slash', url: 'http://h:1' })).message).toMatch(
      /a node id is 1-64 of/,
    );
  });
});

describe('setNode', () => {
  it('changes the url, zone and weight given, and says from what to what', () => {
    const change = setNode(seed, 'node2', { zone: 'b', weight: 2.5 });
    expect(node(change.nodes, 'node2')).toEqual({
      id: 'node2',
      url: 'http://10.0.0.2:9001',
      zone: 'b',
      weight: 2.5,
      role: 'active',
    });
    expect(change.note).toBe('set node2: zone node2 → b, weight 1 → 2.5');
    const moved = setNode(seed, 'node1', { url: 'http://10.0.1.1:9001/' });
    expect(node(moved.nodes, 'node1')?.url).toBe('http://10.0.1.1:9001');
  });

  it('refuses an unknown node, no change at all, and a url another node has', () => {
    expect(refusal(() => setNode(seed, 'node9', { weight: 2 }))).toMatchObject({
      code: 'UNKNOWN_NODE',
      message: 'no node "node9" in the layout (nodes: node1, node2)',
    });
    expect(refusal(() => setNode(seed, 'node1', {})).code).toBe('NOTHING_TO_CHANGE');
    expect(refusal(() => setNode(seed, 'node1', { zone: 'node1', weight: 1 })).code).toBe(
      'NOTHING_TO_CHANGE',
    );
    expect(refusal(() => setNode(seed, 'node1', { url: 'http://10.0.0.2:9001' })).message).toMatch(
      /is given to two nodes/,
    );
  });
});

describe('drainNode and undrainNode', () => {
  it('drain a node out of placement and back', () => {
    const drained = drainNode(seed, 'node2');
    expect(node(drained.nodes, 'node2')?.role).toBe('draining');
    expect(drained.note).toBe('drain node2');
    const back = undrainNode(drained.nodes, 'node2');
    expect(back.nodes).toEqual(seed);
    expect(back.note).toBe('undrain node2');
  });

  it('refuse what is already so, and draining the last active node', () => {
    const drained = drainNode(seed, 'node2').nodes;
    expect(refusal(() => drainNode(drained, 'node2')).code).toBe('NOTHING_TO_CHANGE');
    expect(refusal(() => undrainNode(seed, 'node2')).message).toBe('node2 is already active');
    const last = refusal(() => drainNode(drained, 'node1'));
    expect(last.code).toBe('LAST_ACTIVE_NODE');
    expect(last.message).toMatch(/add a node first/);
    expect(refusal(() => drainNode(seed, 'nodeX')).code).toBe('UNKNOWN_NODE');
  });
});

describe('removeNode', () => {
  it('removes a draining node', () => {
    const change = removeNode(drainNode(seed, 'node2').nodes, 'node2');
    expect(change.nodes.map((n) => n.id)).toEqual(['node1']);
    expect(change.note).toBe('remove node2');
  });

  it('refuses an active node, saying to drain it first', () => {
    const err = refusal(() => removeNode(seed, 'node2'));
    expect(err.code).toBe('NODE_ACTIVE');
    expect(err.message).toMatch(/node2 is active: drain it first \(`cluster drain node2`\)/);
    expect(refusal(() => removeNode(seed, 'node7')).code).toBe('UNKNOWN_NODE');
  });
});

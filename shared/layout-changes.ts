/**
 * The edits an operator makes to a layout (`npm run cluster -- add|set|drain|
 * undrain|remove`), as pure functions of the current node list: each returns
 * the next list and a note saying what changed, or throws a
 * LayoutChangeError saying why not and what to do instead. changeLayout()
 * (layout-store.ts) saves the result as the next version.
 *
 * What needs the store or the node (replica rows left on a node, what its
 * disk still holds) is checked by the caller before it asks for the change.
 */
import { TroveError } from './errors.js';
import { activeNodes, layoutNodesSchema, type LayoutNode } from './layout.js';

/** A layout change that was refused; the message says why and what to do. */
export class LayoutChangeError extends TroveError {
  constructor(code: string, message: string, status = 409) {
    super(code, status, message);
  }
}

/** The next node list and what changed, for the version's note. */
export interface LayoutChange {
  nodes: LayoutNode[];
  note: string;
}

/** A node to add; its zone defaults to its id (a failure domain of its own), its weight to 1. */
export interface NewNode {
  id: string;
  url: string;
  zone?: string | undefined;
  weight?: number | undefined;
}

/** What `set` may change of a node; an absent field stays as it is. */
export interface NodeSettings {
  url?: string | undefined;
  zone?: string | undefined;
  weight?: number | undefined;
}

/** `nodes` as a layout may hold them (layoutNodesSchema), or an INVALID_LAYOUT error naming each problem. */
export function checkedNodes(nodes: readonly LayoutNode[]): LayoutNode[] {
  const parsed = layoutNodesSchema.safeParse(nodes);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const [index, field] = issue.path;
    const id = typeof index === 'number' ? nodes[index]?.id : undefined;
    return id !== undefined && field !== undefined
      ? `${id} ${String(field)}: ${issue.message}`
      : issue.message;
  });
  throw new LayoutChangeError('INVALID_LAYOUT', `invalid layout: ${problems.join('; ')}`, 400);
}

const withoutSlash = (url: string) => url.replace(/\/+$/, '');

function find(nodes: readonly LayoutNode[], id: string): LayoutNode {
  const node = nodes.find((n) => n.id === id);
  if (!node) {
    const known = nodes.map((n) => n.id).join(', ') || 'none';
    throw new LayoutChangeError('UNKNOWN_NODE', `no node "${id}" in the layout (nodes: ${known})`);
  }
  return node;
}

/** `nodes` with node `id` replaced by `change(node)`, checked. */
function replace(
  nodes: readonly LayoutNode[],
  id: string,
  change: (node: LayoutNode) => LayoutNode,
): LayoutNode[] {
  return checkedNodes(nodes.map((n) => (n.id === id ? change(n) : n)));
}

/** A new active node. Refused when its id or its url is already in the layout. */
export function addNode(nodes: readonly LayoutNode[], add: NewNode): LayoutChange {
  const url = withoutSlash(add.url);
  if (nodes.some((n) => n.id === add.id)) {
    throw new LayoutChangeError(
      'NODE_EXISTS',
      `node "${add.id}" is already in the layout; change it with \`cluster set ${add.id}\``,
    );
  }
  const same = nodes.find((n) => withoutSlash(n.url) === url);
  if (same) {
    throw new LayoutChangeError(
      'NODE_EXISTS',
      `${url} is already node "${same.id}": one node, one url`,
    );
  }
  const node: LayoutNode = {
    id: add.id,
    url,
    zone: add.zone ?? add.id,
    weight: add.weight ?? 1,
    role: 'active',
  };
  return {
    nodes: checkedNodes([...nodes, node]),
    note: `add ${node.id} (${node.url}, zone ${node.zone}, weight ${node.weight})`,
  };
}

/** Changes a node's url, zone or weight. Refused when nothing would change. */
export function setNode(
  nodes: readonly LayoutNode[],
  id: string,
  settings: NodeSettings,
): LayoutChange {
  const node = find(nodes, id);
  const wanted = {
    url: settings.url === undefined ? undefined : withoutSlash(settings.url),
    zone: settings.zone,
    weight: settings.weight,
  };
  const changes: string[] = [];
  for (const field of ['url', 'zone', 'weight'] as const) {
    const value = wanted[field];
    if (value !== undefined && value !== node[field])
      changes.push(`${field} ${node[field]} → ${value}`);
  }
  if (changes.length === 0) {
    throw new LayoutChangeError(
      'NOTHING_TO_CHANGE',
      `nothing to change: ${id} already has url ${node.url}, zone ${node.zone}, weight ${node.weight}`,
    );
  }
  return {
    nodes: replace(nodes, id, (n) => ({
      ...n,
      url: wanted.url ?? n.url,
      zone: wanted.zone ?? n.zone,
      weight: wanted.weight ?? n.weight,
    })),
    note: `set ${id}: ${changes.join(', ')}`,
  };
}

/**
 * Takes a node out of placement: it takes no new replicas and keeps serving
 * what it holds while the rebalance copies that elsewhere. Refused for the
 * last active node: new uploads would have nowhere to go.
 */
export function drainNode(nodes: readonly LayoutNode[], id: string): LayoutChange {
  const node = find(nodes, id);
  if (node.role === 'draining') {
    throw new LayoutChangeError('NOTHING_TO_CHANGE', `${id} is already draining`);
  }
  const next = replace(nodes, id, (n) => ({ ...n, role: 'draining' }));
  if (activeNodes(next).length === 0) {
    throw new LayoutChangeError(
      'LAST_ACTIVE_NODE',
      `${id} is the last active node: draining it would leave new uploads nowhere to go; add a node first`,
    );
  }
  return { nodes: next, note: `drain ${id}` };
}

/** Puts a draining node back into placement. */
export function undrainNode(nodes: readonly LayoutNode[], id: string): LayoutChange {
  const node = find(nodes, id);
  if (node.role === 'active') {
    throw new LayoutChangeError('NOTHING_TO_CHANGE', `${id} is already active`);
  }
  return { nodes: replace(nodes, id, (n) => ({ ...n, role: 'active' })), note: `undrain ${id}` };
}

/**
 * Drops a node from the layout. Only a draining one: an active node still
 * holds the copies placement sends readers to, and removing it would lose
 * their placement. Drain it, let the rebalance empty it, then remove it.
 */
export function removeNode(nodes: readonly LayoutNode[], id: string): LayoutChange {
  const node = find(nodes, id);
  if (node.role !== 'draining') {
    throw new LayoutChangeError(
      'NODE_ACTIVE',
      `${id} is active: drain it first (\`cluster drain ${id}\`), wait until the rebalance ` +
        `has emptied it (\`cluster show\`: 0 replica rows), then remove it`,
    );
  }
  return { nodes: checkedNodes(nodes.filter((n) => n.id !== id)), note: `remove ${id}` };
}

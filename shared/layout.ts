/**
 * The cluster layout: which storage nodes exist, in which failure domain
 * (zone) each one sits, and what share of the data (weight) each one takes.
 *
 * A layout is versioned data in the metadata store (never per-process
 * configuration): every change (`npm run cluster -- add|set|drain|remove`)
 * saves a new version, and every gateway and worker follows the newest one
 * (layout-watcher.ts). `NODES` only seeds version 1.
 *
 * Placement is weighted rendezvous hashing with a zone rule: each node scores
 * a key by `weight / -ln(u)` (u: the key's uniform hash on that node), and the
 * replicas go to the best-scoring nodes of distinct zones, as many zones as
 * there are (then the best of the zones holding fewest replicas). A node
 * added or removed changes only the keys whose best nodes it enters or
 * leaves, so a rebalance moves about its share of the data and no more.
 */
import { z } from 'zod';
import type { NodeAddress } from './config.js';
import { score } from './placement.js';

/** `active` takes new replicas; `draining` keeps serving what it holds while the rebalance empties it. */
export type NodeRole = 'active' | 'draining';

export interface LayoutNode extends NodeAddress {
  /** Failure domain: a machine, a rack, a room. Replicas of a file go to distinct zones. */
  zone: string;
  /** Share of the data relative to the other nodes (e.g. its disk size in TB). */
  weight: number;
  role: NodeRole;
}

export interface Layout {
  version: number;
  /** When this version was saved, ms since epoch. */
  createdAt: number;
  nodes: LayoutNode[];
  /** What changed, for `cluster show` and the logs ("add node4 (zone b, weight 2)"). */
  note: string;
}

export const NODE_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const ZONE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Weights are kept small and finite: a score is `weight / -ln(u)`. */
export const MAX_WEIGHT = 1_000_000;

export const layoutNodeSchema = z.object({
  id: z.string().regex(NODE_ID, 'a node id is 1-64 of [A-Za-z0-9_-]'),
  url: z
    .string()
    .refine((u) => URL.canParse(u) && /^https?:\/\//.test(u), 'a node url is http(s)://host:port')
    .transform((u) => u.replace(/\/+$/, '')),
  zone: z.string().regex(ZONE, 'a zone is 1-64 of [A-Za-z0-9_.:-]'),
  weight: z.number().positive().max(MAX_WEIGHT),
  role: z.enum(['active', 'draining']),
});

/** The node list of a layout, checked: ids and urls unique. Throws a ZodError naming the problem. */
export const layoutNodesSchema = z.array(layoutNodeSchema).superRefine((nodes, ctx) => {
  const seen = new Set<string>();
  const urls = new Set<string>();
  for (const n of nodes) {
    if (seen.has(n.id)) ctx.addIssue({ code: 'custom', message: `node "${n.id}" appears twice` });
    if (urls.has(n.url))
      ctx.addIssue({ code: 'custom', message: `url ${n.url} is given to two nodes` });
    seen.add(n.id);
    urls.add(n.url);
  }
});

/** Version 1, from `NODES`: each node in a zone of its own (named after it), weight 1. */
export function seedLayout(nodes: readonly NodeAddress[], now = Date.now()): Layout {
  return {
    version: 1,
    createdAt: now,
    nodes: nodes.map((n) => ({ id: n.id, url: n.url, zone: n.id, weight: 1, role: 'active' })),
    note: `seeded from NODES (${nodes.map((n) => n.id).join(', ')})`,
  };
}

/** The nodes that take new replicas. */
export function activeNodes<T extends LayoutNode>(nodes: readonly T[]): T[] {
  return nodes.filter((n) => n.role === 'active');
}

/** The distinct zones of `nodes`, sorted. */
export function zonesOf(nodes: readonly Pick<LayoutNode, 'zone'>[]): string[] {
  return [...new Set(nodes.map((n) => n.zone))].sort();
}

/**
 * The weighted rendezvous score of `node` for `key`: `weight / -ln(u)` with
 * u in (0, 1) from the 32-bit hash, so a node of weight 2 is first for twice
 * as many keys as one of weight 1, and the ranking of the other nodes never
 * depends on a node being there or not.
 */
export function weightedScore(key: string, node: Pick<LayoutNode, 'id' | 'weight'>): number {
  const u = (score(key, node.id) + 0.5) / 4294967296;
  return node.weight / -Math.log(u);
}

/**
 * Every node of `nodes` in placement order for `key`: the first `copies` of
 * it are where the key's replicas belong. Pick after pick, the best-scoring
 * node of a zone holding the fewest picks so far: distinct zones first, then
 * as spread as the zones allow. Deterministic whatever the input order.
 */
export function placementOrder<T extends Pick<LayoutNode, 'id' | 'zone' | 'weight'>>(
  key: string,
  nodes: readonly T[],
): T[] {
  const ranked = nodes
    .map((node) => ({ node, s: weightedScore(key, node) }))
    .sort((a, b) => b.s - a.s || (a.node.id < b.node.id ? -1 : 1))
    .map((x) => x.node);
  const picks = new Map<string, number>();
  const picksOf = (node: T) => picks.get(node.zone) ?? 0;
  const order: T[] = [];
  while (ranked.length > 0) {
    // The best-ranked node among those whose zone holds the fewest picks.
    let best = 0;
    for (let i = 1; i < ranked.length && picksOf(ranked[best]!) > 0; i++) {
      if (picksOf(ranked[i]!) < picksOf(ranked[best]!)) best = i;
    }
    const node = ranked.splice(best, 1)[0]!;
    order.push(node);
    picks.set(node.zone, picksOf(node) + 1);
  }
  return order;
}

/** Where `key`'s `copies` replicas belong in `layout`: its active nodes in placement order. */
export function placementOf<T extends LayoutNode>(
  key: string,
  nodes: readonly T[],
  copies: number,
): T[] {
  return placementOrder(key, activeNodes(nodes)).slice(0, copies);
}

/**
 * How many distinct zones `copies` replicas can span in this layout: all
 * of them when there are at least as many active zones, else every zone.
 */
export function zonesWanted(nodes: readonly LayoutNode[], copies: number): number {
  return Math.min(copies, zonesOf(activeNodes(nodes)).length);
}

/** What is wrong with a layout for `copies` replicas, for /api/cluster and `cluster show`. */
export function layoutWarnings(nodes: readonly LayoutNode[], copies: number): string[] {
  const active = activeNodes(nodes);
  const zones = zonesOf(active);
  const warnings: string[] = [];
  if (active.length < copies)
    warnings.push(
      `only ${active.length} active node(s) for ${copies} replicas: new files get fewer copies, and no draining node can be emptied`,
    );
  else if (zones.length < copies)
    warnings.push(
      `only ${zones.length} zone(s) for ${copies} replicas: some replicas of a file share a zone ` +
        `(${zones.join(', ')}), so losing one zone can take several of them`,
    );
  return warnings;
}

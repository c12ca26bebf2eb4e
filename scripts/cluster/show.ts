/** `cluster show`: the layout with what the store knows of each node, as text or JSON. */
import type { NodeAddress } from '../../shared/config.js';
import { ensureLayout } from '../../shared/layout-store.js';
import { layoutWarnings, zonesOf, type LayoutNode } from '../../shared/layout.js';
import type { MetadataStore } from '../../shared/metadata-store.js';

/** Versions whose notes `show` lists. */
const HISTORY = 5;

/** What `show --json` prints. */
export interface LayoutView {
  version: number;
  /** When this version was saved (ISO 8601). */
  createdAt: string;
  note: string;
  nodes: (LayoutNode & { replicaRows: number })[];
  zones: { zone: string; nodes: string[] }[];
  warnings: string[];
  history: { version: number; createdAt: string; note: string }[];
}

export async function layoutView(
  store: MetadataStore,
  seedNodes: readonly NodeAddress[],
  copies: number,
): Promise<LayoutView> {
  const layout = await ensureLayout(store, seedNodes);
  const nodes = [];
  for (const node of layout.nodes) {
    nodes.push({ ...node, replicaRows: await store.replicaCountOnNode(node.id) });
  }
  return {
    version: layout.version,
    createdAt: new Date(layout.createdAt).toISOString(),
    note: layout.note,
    nodes,
    zones: zonesOf(layout.nodes).map((zone) => ({
      zone,
      nodes: layout.nodes.filter((n) => n.zone === zone).map((n) => n.id),
    })),
    warnings: layoutWarnings(layout.nodes, copies),
    history: (await store.layoutHistory(HISTORY)).map((l) => ({
      version: l.version,
      createdAt: new Date(l.createdAt).toISOString(),
      note: l.note,
    })),
  };
}

/** Rows of cells as aligned columns, two spaces apart. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

export function renderLayout(v: LayoutView): string {
  const nodes = table([
    ['node', 'url', 'zone', 'weight', 'role', 'replica rows'],
    ...v.nodes.map((n) => [n.id, n.url, n.zone, String(n.weight), n.role, String(n.replicaRows)]),
  ]);
  const draining = new Set(v.nodes.filter((n) => n.role === 'draining').map((n) => n.id));
  const member = (id: string) => (draining.has(id) ? `${id} draining` : id);
  const zones = v.zones.map((z) => `${z.zone} (${z.nodes.map(member).join(', ')})`).join(', ');
  const history = table(v.history.map((h) => [String(h.version), h.createdAt, h.note]));
  return [
    `layout version ${v.version}, saved ${v.createdAt}: ${v.note}`,
    '',
    ...nodes.map((line) => `  ${line}`),
    '',
    `zones: ${zones}`,
    ...(v.warnings.length ? v.warnings.map((w) => `warning: ${w}`) : ['warnings: none']),
    '',
    `last ${v.history.length} version(s):`,
    ...history.map((line) => `  ${line}`),
  ].join('\n');
}

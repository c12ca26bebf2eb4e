/**
 * What each `npm run cluster` command does with the metadata store: read the
 * layout (seeding it from NODES), run the checks only the store and the node
 * can answer, then save the change as the next version (changeLayout).
 */
import type { NodeAddress } from '../../shared/config.js';
import {
  addNode,
  drainNode,
  removeNode,
  setNode,
  undrainNode,
  type LayoutChange,
} from '../../shared/layout-changes.js';
import { changeLayout, ensureLayout } from '../../shared/layout-store.js';
import { layoutWarnings, type Layout, type LayoutNode } from '../../shared/layout.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import { probeFailure, type HealthProbe, type NodeIdentity } from './node-check.js';
import type { ClusterCommand } from './options.js';
import { layoutView, renderLayout } from './show.js';

/** A check against the store or the node refused the command (exit 2); the message says what to do. */
export class ClusterRefusedError extends Error {
  override name = 'ClusterRefusedError';
}

export interface ClusterDeps {
  store: MetadataStore;
  /** NODES: version 1 of a store that has no layout yet. */
  seedNodes: readonly NodeAddress[];
  /** REPLICATION_FACTOR, which the warnings are about. */
  copies: number;
  health: HealthProbe;
  /** A line of the answer (stdout). */
  out: (line: string) => void;
}

export async function runCommand(cmd: ClusterCommand, deps: ClusterDeps): Promise<void> {
  switch (cmd.name) {
    case 'show': {
      const view = await layoutView(deps.store, deps.seedNodes, deps.copies);
      deps.out(cmd.json ? JSON.stringify(view, null, 2) : renderLayout(view));
      return;
    }
    case 'add':
      return add(cmd, deps);
    case 'set':
      return save(deps, (l) => setNode(l.nodes, cmd.id, cmd));
    case 'drain':
      return save(deps, (l) => drainNode(l.nodes, cmd.id));
    case 'undrain':
      return save(deps, (l) => undrainNode(l.nodes, cmd.id));
    case 'remove':
      return remove(cmd, deps);
  }
}

/** Saves `change` as the next version and says so. */
async function save(deps: ClusterDeps, change: (l: Layout) => LayoutChange): Promise<void> {
  const layout = await changeLayout(deps.store, deps.seedNodes, change);
  deps.out(`layout version ${layout.version} saved: ${layout.note}`);
  deps.out('gateways and workers follow it within a few seconds');
  for (const w of layoutWarnings(layout.nodes, deps.copies)) deps.out(`warning: ${w}`);
}

/**
 * A url with a typo would enter the layout as a node that never answers, and
 * uploads would be placed on it: the node there must say it is `id` first.
 */
async function add(cmd: Extract<ClusterCommand, { name: 'add' }>, deps: ClusterDeps) {
  const change = (l: Layout) => addNode(l.nodes, cmd);
  // Refused for the layout's own reasons (a taken id or url) before asking the network.
  change(await ensureLayout(deps.store, deps.seedNodes));
  if (cmd.check) {
    const node = await probe(deps, cmd.url);
    if ('failure' in node) {
      throw new ClusterRefusedError(
        `${cmd.url} does not answer GET /health (${node.failure}): check the url and that ` +
          `the node runs, or add it without this check (--no-check)`,
      );
    }
    if (node.id !== cmd.id) {
      throw new ClusterRefusedError(
        `${cmd.url} answers as node "${node.id}", not "${cmd.id}": check the url, or add it ` +
          `under its own id (its NODE_ID)`,
      );
    }
  }
  await save(deps, change);
}

/**
 * A node leaves the layout only once nothing is lost with it: it is
 * draining, no replica row points at it, and its disk says it holds nothing
 * (blobs no file owns are removed by anti-entropy after ORPHAN_GRACE_SECONDS).
 */
async function remove(cmd: Extract<ClusterCommand, { name: 'remove' }>, deps: ClusterDeps) {
  const change = (l: Layout) => removeNode(l.nodes, cmd.id);
  const current = await ensureLayout(deps.store, deps.seedNodes);
  // Refused for the layout's own reasons (unknown, still active) before the rows and the node.
  change(current);
  const node = current.nodes.find((n) => n.id === cmd.id)!;
  const rows = await deps.store.replicaCountOnNode(cmd.id);
  if (rows > 0) {
    throw new ClusterRefusedError(
      `${cmd.id} still has ${rows} replica row(s): the rebalance has not moved everything off ` +
        `it yet; wait until \`cluster show\` says 0, then remove it`,
    );
  }
  await checkEmpty(node, cmd.force, deps);
  await save(deps, change);
}

async function checkEmpty(node: LayoutNode, force: boolean, deps: ClusterDeps): Promise<void> {
  const answer = await probe(deps, node.url);
  if (!('failure' in answer) && answer.id === node.id) {
    if (answer.objects === 0) return;
    throw new ClusterRefusedError(
      `${node.id} still stores ${answer.objects} object(s) (GET /health) though no replica row ` +
        `points at it: anti-entropy removes blobs no file owns after ORPHAN_GRACE_SECONDS; ` +
        `try again then`,
    );
  }
  const failure =
    'failure' in answer
      ? `does not answer GET /health (${answer.failure})`
      : `answers as node "${answer.id}"`;
  if (!force) {
    throw new ClusterRefusedError(
      `${node.id} (${node.url}) ${failure}, so what its disk still holds is unknown: start it ` +
        `and try again, or, if it is gone for good, remove it anyway with --force`,
    );
  }
  deps.out(`${node.id} (${node.url}) ${failure}; removing it anyway (--force, 0 replica rows)`);
}

async function probe(deps: ClusterDeps, url: string): Promise<NodeIdentity | { failure: string }> {
  try {
    return await deps.health(url);
  } catch (err) {
    return { failure: probeFailure(err) };
  }
}

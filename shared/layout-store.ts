/**
 * The cluster layout as the metadata store keeps it: read (seeding version 1
 * from NODES on a store that has none) and changed. A change is saved only as
 * the version after the one it was made from (saveLayout), so two changes at
 * once never overwrite each other: the one that lost reads the winner's
 * version and is applied again on top of it.
 */
import type { NodeAddress } from './config.js';
import { TroveError } from './errors.js';
import { checkedNodes, type LayoutChange } from './layout-changes.js';
import { seedLayout, type Layout } from './layout.js';
import type { MetadataStore } from './metadata-store.js';

type LayoutStore = Pick<MetadataStore, 'currentLayout' | 'saveLayout'>;

/** Tries of a change before it gives up to others changing the layout at the same time. */
const CHANGE_ATTEMPTS = 5;

/** The layout kept changing under a change, try after try. */
export class LayoutConflictError extends TroveError {
  constructor(attempts: number) {
    super(
      'LAYOUT_CONFLICT',
      409,
      `the layout changed ${attempts} times while this change was being saved; try again`,
    );
  }
}

/**
 * The current layout. On a store without one, saves version 1 from
 * `seedNodes` (NODES: each node a zone of its own, weight 1); when another
 * process saved a version 1 first, that one is the layout.
 */
export async function ensureLayout(
  store: LayoutStore,
  seedNodes: readonly NodeAddress[],
): Promise<Layout> {
  const current = await store.currentLayout();
  if (current) return current;
  const seed = seedLayout(seedNodes);
  seed.nodes = checkedNodes(seed.nodes);
  if (await store.saveLayout(seed)) return seed;
  const theirs = await store.currentLayout();
  if (!theirs) throw new Error('the metadata store refused layout version 1 but holds none');
  return theirs;
}

/**
 * Applies `change` to the current layout and saves the result as the next
 * version; returns it. When another change was saved in between, `change`
 * runs again on the newer layout (so it must be a pure function of it), up
 * to a few times. A LayoutChangeError from `change`, or for nodes that are
 * not a valid layout, is thrown as it is.
 */
export async function changeLayout(
  store: LayoutStore,
  seedNodes: readonly NodeAddress[],
  change: (current: Layout) => LayoutChange,
): Promise<Layout> {
  for (let attempt = 1; attempt <= CHANGE_ATTEMPTS; attempt++) {
    const current = await ensureLayout(store, seedNodes);
    const { nodes, note } = change(current);
    const next: Layout = {
      version: current.version + 1,
      createdAt: Date.now(),
      nodes: checkedNodes(nodes),
      note,
    };
    if (await store.saveLayout(next)) return next;
  }
  throw new LayoutConflictError(CHANGE_ATTEMPTS);
}

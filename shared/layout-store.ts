/** Reading and seeding the layout in the metadata store. */
import type { NodeAddress } from './config.js';
import { seedLayout, type Layout } from './layout.js';
import type { MetadataStore } from './metadata-store.js';

/** The current layout; on an empty store, version 1 from NODES (or whoever saved it first). */
export async function ensureLayout(store: MetadataStore, seed: NodeAddress[]): Promise<Layout> {
  const current = await store.currentLayout();
  if (current) return current;
  if (await store.saveLayout(seedLayout(seed))) return (await store.currentLayout())!;
  return (await store.currentLayout())!;
}

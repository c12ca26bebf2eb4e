/**
 * The layout version a gateway or worker works with, kept current: the
 * newest version in the metadata store is read every LAYOUT_POLL_MS, so a
 * change made with `npm run cluster` reaches every process within seconds
 * and no process needs a restart (or the same environment) to follow it.
 *
 * A poll that fails (the database away for a moment) keeps the version in
 * force; the next poll catches up. Versions only move forward.
 */
import type { NodeAddress } from './config.js';
import type { Layout, LayoutNode } from './layout.js';
import { ensureLayout } from './layout-store.js';
import type { Logger } from './logger.js';
import type { MetadataStore } from './metadata-store.js';

/** The layout in force, as the code that places and reads replicas asks for it. */
export interface LayoutView {
  current(): Layout;
  /** Every node of the layout, draining ones included (they still serve reads). */
  nodes(): LayoutNode[];
  node(id: string): LayoutNode | undefined;
}

/** A layout that never changes: for tests, and tools that act on one version. */
export function fixedLayout(layout: Layout): LayoutView {
  return {
    current: () => layout,
    nodes: () => layout.nodes,
    node: (id) => layout.nodes.find((n) => n.id === id),
  };
}

export interface LayoutWatcherOptions {
  store: MetadataStore;
  /** NODES: the first version, when the store has none yet. */
  seed: NodeAddress[];
  pollMs: number;
  log: Logger;
}

export class LayoutWatcher implements LayoutView {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private readonly listeners: ((layout: Layout, previous: Layout) => void)[] = [];

  private constructor(
    private layout: Layout,
    private readonly opts: LayoutWatcherOptions,
  ) {}

  /** Reads (or seeds) the current layout and follows it until `stop`. */
  static async start(opts: LayoutWatcherOptions): Promise<LayoutWatcher> {
    const layout = await ensureLayout(opts.store, opts.seed);
    const watcher = new LayoutWatcher(layout, opts);
    const unlisted = opts.seed.filter((n) => !layout.nodes.some((l) => l.id === n.id));
    if (layout.version > 1 || unlisted.length > 0)
      opts.log.info(
        { layout: layout.version, nodes: layout.nodes.map((n) => n.id) },
        'cluster layout from the metadata store (NODES only seeds the first version)',
      );
    watcher.timer = setInterval(() => void watcher.poll(), opts.pollMs);
    watcher.timer.unref();
    return watcher;
  }

  current(): Layout {
    return this.layout;
  }

  nodes(): LayoutNode[] {
    return this.layout.nodes;
  }

  node(id: string): LayoutNode | undefined {
    return this.layout.nodes.find((n) => n.id === id);
  }

  /** Calls `listener` with each new version (after it is in force) and the one it replaced. */
  onChange(listener: (layout: Layout, previous: Layout) => void): void {
    this.listeners.push(listener);
  }

  /** Reads the newest version now; resolves once it is in force. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const newest = await this.opts.store.currentLayout();
      if (newest && newest.version > this.layout.version) this.adopt(newest);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'could not read the cluster layout');
    } finally {
      this.polling = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private adopt(layout: Layout): void {
    const previous = this.layout;
    this.layout = layout;
    this.opts.log.info(
      { layout: layout.version, from: previous.version, note: layout.note },
      'cluster layout changed',
    );
    for (const listener of this.listeners) {
      try {
        listener(layout, previous);
      } catch (err) {
        this.opts.log.error({ err }, 'a layout listener failed');
      }
    }
  }
}

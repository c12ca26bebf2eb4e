/**
 * The gateway's view of which storage nodes are up.
 *
 * A node is `offline` from the moment a request to it fails to connect (or a
 * probe fails), so the next request routes around it at once instead of
 * waiting for its own timeout; a successful probe brings it back `online`.
 * Probes run every PROBE_INTERVAL_MS.
 */
import type { NodeAddress } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import type { NodeClient } from '../shared/node-client.js';

export type NodeStatus = 'online' | 'offline';

export interface NodeView extends NodeAddress {
  status: NodeStatus;
  /** When the node last answered, ms since epoch. */
  lastSeen: number | null;
  lastError: string | null;
  latencyMs: number | null;
  objects: number | null;
  freeBytes: number | null;
}

export class NodeRegistry {
  private readonly views: Map<string, NodeView>;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    nodes: NodeAddress[],
    private readonly client: NodeClient,
    private readonly opts: { probeIntervalMs: number; log: Logger },
  ) {
    this.views = new Map(
      nodes.map((n) => [
        n.id,
        {
          ...n,
          status: 'offline',
          lastSeen: null,
          lastError: 'not probed yet',
          latencyMs: null,
          objects: null,
          freeBytes: null,
        },
      ]),
    );
  }

  all(): NodeView[] {
    return [...this.views.values()];
  }

  get(id: string): NodeView | undefined {
    return this.views.get(id);
  }

  isOnline(id: string): boolean {
    return this.views.get(id)?.status === 'online';
  }

  onlineCount(): number {
    return this.all().filter((n) => n.status === 'online').length;
  }

  /** A request to the node could not connect or timed out. */
  reportFailure(id: string, err: unknown): void {
    const view = this.views.get(id);
    if (!view) return;
    view.lastError = (err as Error)?.message ?? String(err);
    if (view.status !== 'offline') {
      view.status = 'offline';
      this.opts.log.warn({ node: id, err: view.lastError }, 'storage node offline');
    }
  }

  reportSuccess(id: string): void {
    const view = this.views.get(id);
    if (!view) return;
    view.lastSeen = Date.now();
    if (view.status !== 'online') {
      view.status = 'online';
      view.lastError = null;
      this.opts.log.info({ node: id }, 'storage node online');
    }
  }

  async probeAll(): Promise<void> {
    await Promise.all(this.all().map((n) => this.probe(n)));
  }

  /** Probes now, then every interval until `stop`. */
  async start(): Promise<void> {
    await this.probeAll();
    this.timer = setInterval(() => void this.probeAll(), this.opts.probeIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async probe(view: NodeView): Promise<void> {
    const started = performance.now();
    try {
      // Shorter than the interval, so probes never pile up behind a hung node.
      const health = await this.client.health(
        view,
        Math.max(100, Math.min(1000, this.opts.probeIntervalMs - 50)),
      );
      if (health.id !== view.id) throw new Error(`answers as ${health.id}, expected ${view.id}`);
      view.latencyMs = Math.round((performance.now() - started) * 10) / 10;
      view.objects = health.objects;
      view.freeBytes = health.free_bytes;
      this.reportSuccess(view.id);
    } catch (err) {
      this.reportFailure(view.id, err);
    }
  }
}

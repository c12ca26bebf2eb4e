/**
 * Which storage nodes are up, as every gateway of the cluster sees it.
 *
 * States: `online` → `suspect` after one failed probe or request → `offline`
 * after OFFLINE_AFTER_FAILURES consecutive failures (from any gateway) → back
 * to `online` at the first successful probe. Writes use online nodes (suspect
 * ones only when the online ones are short of a quorum: see Replicator) and
 * reads try online nodes first, so one failed connection is enough to route
 * around a node at once, without a timeout per request.
 *
 * Probes run on a node-cron schedule (every 2 s); an offline node is also
 * probed every RECOVERY_PROBE_MS, so one that comes back takes writes again
 * within a quarter of a second instead of up to a whole interval (uploads
 * meanwhile would be one copy short, and need a repair). Each outcome goes through
 * one atomic Redis script on the node's shared record, and each gateway
 * re-reads every record after its probe round, so all gateways (and
 * GET /api/cluster) agree within one probe interval. If Redis is down, each
 * gateway carries on with its own observations.
 *
 * A node that comes back (offline → online, first seen, or restarted: its
 * uptime went backwards) is announced once, by the gateway whose probe saw
 * it, through `onCheckNeeded` (which queues anti-entropy for it); so is a
 * node whose scrub count of corrupt blobs went up, so they are repaired.
 */
import type { Redis } from 'ioredis';
import cron, { type ScheduledTask } from 'node-cron';
import type { NodeAddress } from '../../shared/config.js';
import type { Logger } from '../../shared/logger.js';
import type { NodeClient } from '../../shared/node-client.js';
import type { NodeHealth } from '../../shared/node-protocol.js';

export type NodeStatus = 'online' | 'suspect' | 'offline';

export interface NodeView extends NodeAddress {
  status: NodeStatus;
  /** When the node last answered, ms since epoch. */
  lastSeen: number | null;
  lastError: string | null;
  latencyMs: number | null;
  objects: number | null;
  /** Bytes of blobs on the node, and free bytes on its disk, as its last probe said. */
  bytes: number | null;
  freeBytes: number | null;
  failures: number;
  /** The node's last scrub report, as its /health gives it. */
  scrub: unknown;
}

export interface RegistryOptions {
  redis: Redis;
  /** Key prefix of the shared records (the cluster's name). */
  prefix: string;
  schedule: string;
  offlineAfter: number;
  log: Logger;
  /** A node needs anti-entropy: it came back, or its scrub quarantined blobs. */
  onCheckNeeded?: (node: string, why: string) => void;
}

/**
 * The state machine, applied atomically to a node's Redis hash.
 * ARGV: ok (1/0), now, offlineAfter, latency, objects, free, startedAt, error, scrub, bytes.
 * Returns {previous status, new status, restarted (1/0)}.
 */
const OUTCOME_SCRIPT = `
local prev = redis.call('HGET', KEYS[1], 'status') or 'unknown'
local prevStarted = tonumber(redis.call('HGET', KEYS[1], 'started_at') or '0')
local status
local restarted = 0
if ARGV[1] == '1' then
  status = 'online'
  redis.call('HSET', KEYS[1], 'status', status, 'failures', 0, 'last_seen', ARGV[2], 'last_error', '')
  -- Only a probe knows the node's start time and figures; a request's success leaves them be.
  local started = tonumber(ARGV[7])
  if started > 0 then
    if prevStarted > 0 and started > prevStarted + 5000 then restarted = 1 end
    redis.call('HSET', KEYS[1], 'latency_ms', ARGV[4], 'objects', ARGV[5], 'free_bytes', ARGV[6],
      'started_at', ARGV[7], 'scrub', ARGV[9], 'bytes', ARGV[10])
  end
else
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if failures >= tonumber(ARGV[3]) then status = 'offline' else status = 'suspect' end
  redis.call('HSET', KEYS[1], 'status', status, 'last_error', ARGV[8])
end
return {prev, status, restarted}`;

type RedisWithOutcome = Redis & {
  troveNodeOutcome(key: string, ...args: string[]): Promise<[string, NodeStatus, number]>;
};

const PROBE_TIMEOUT_MS = 1000;
/** How often an offline node is probed besides the schedule (a refused connection costs next to nothing). */
export const RECOVERY_PROBE_MS = 250;

/**
 * The registry as request handlers use it: node states to read, and what a
 * request saw of a node to report. run.ts passes the NodeRegistry; a test may
 * pass a fake.
 */
export interface NodeStates {
  all(): NodeView[];
  isOnline(id: string): boolean;
  onlineCount(): number;
  reportFailure(id: string, err: unknown): void;
  reportSuccess(id: string): void;
}

export class NodeRegistry implements NodeStates {
  private readonly views: Map<string, NodeView>;
  private task: ScheduledTask | undefined;
  private recovery: NodeJS.Timeout | undefined;
  private probingOffline = false;
  private readonly statusListeners = new Set<(id: string, status: NodeStatus) => void>();

  constructor(
    nodes: NodeAddress[],
    private readonly client: NodeClient,
    private readonly opts: RegistryOptions,
  ) {
    opts.redis.defineCommand('troveNodeOutcome', { numberOfKeys: 1, lua: OUTCOME_SCRIPT });
    this.views = new Map(nodes.map((n) => [n.id, unprobed(n)]));
  }

  /**
   * Follows a new layout: nodes that joined are probed at once (so they take
   * writes within a round trip, not a probe interval), nodes that left are
   * forgotten, a node whose URL changed is probed at its new one.
   */
  async setNodes(nodes: NodeAddress[]): Promise<void> {
    const fresh: NodeView[] = [];
    for (const id of this.views.keys()) if (!nodes.some((n) => n.id === id)) this.views.delete(id);
    for (const n of nodes) {
      const view = this.views.get(n.id);
      if (view && view.url === n.url) continue;
      const next = view ? { ...view, url: n.url } : unprobed(n);
      this.views.set(n.id, next);
      fresh.push(next);
    }
    await Promise.all(fresh.map((view) => this.probe(view)));
  }

  all(): NodeView[] {
    return [...this.views.values()];
  }

  get(id: string): NodeView | undefined {
    return this.views.get(id);
  }

  status(id: string): NodeStatus {
    return this.views.get(id)?.status ?? 'offline';
  }

  isOnline(id: string): boolean {
    return this.status(id) === 'online';
  }

  onlineCount(): number {
    return this.all().filter((n) => n.status === 'online').length;
  }

  /**
   * Calls `listener` at each change of a node's status, whether this gateway
   * saw it or another one did (through Redis); returns what unsubscribes it.
   */
  onStatusChange(listener: (id: string, status: NodeStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  private statusChanged(id: string, status: NodeStatus): void {
    for (const listener of this.statusListeners) listener(id, status);
  }

  /** A request to the node could not connect or timed out: suspect at once. */
  reportFailure(id: string, err: unknown): void {
    void this.record(id, { ok: false, error: (err as Error)?.message ?? String(err) });
  }

  /** A request succeeded; only a node not yet online needs the news (probes keep the rest fresh). */
  reportSuccess(id: string): void {
    const view = this.views.get(id);
    if (view && view.status !== 'online') void this.record(id, { ok: true });
  }

  /** Probes now, then on the schedule (and offline nodes more often) until `stop`. */
  async start(): Promise<void> {
    await this.probeAll();
    this.task = cron.schedule(this.opts.schedule, () => this.probeAll(), {
      name: 'node-probe',
      noOverlap: true,
    });
    this.recovery = setInterval(() => void this.probeOffline(), RECOVERY_PROBE_MS);
    this.recovery.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.recovery);
    await this.task?.stop();
  }

  /**
   * Offline nodes only: a suspect one keeps the schedule's pace, so a blip
   * does not turn into `offline` (and a full anti-entropy pass) in a second.
   */
  private async probeOffline(): Promise<void> {
    const offline = this.all().filter((n) => n.status === 'offline');
    if (offline.length === 0 || this.probingOffline) return;
    this.probingOffline = true;
    try {
      await Promise.all(offline.map((n) => this.probe(n)));
    } finally {
      this.probingOffline = false;
    }
  }

  async probeAll(): Promise<void> {
    await Promise.all(this.all().map((n) => this.probe(n)));
    await this.refresh();
  }

  private async probe(view: NodeView): Promise<void> {
    const started = performance.now();
    let health: NodeHealth & { uptime_s?: number; scrub?: unknown };
    try {
      health = await this.client.health(view, PROBE_TIMEOUT_MS);
      if (health.id !== view.id) throw new Error(`answers as ${health.id}, expected ${view.id}`);
    } catch (err) {
      await this.record(view.id, { ok: false, error: (err as Error).message });
      return;
    }
    await this.record(view.id, {
      ok: true,
      latencyMs: Math.round((performance.now() - started) * 10) / 10,
      objects: health.objects,
      bytes: health.bytes,
      freeBytes: health.free_bytes,
      startedAt: Date.now() - (health.uptime_s ?? 0) * 1000,
      scrub: health.scrub ?? null,
    });
  }

  /** Applies one observation, shared through Redis when it answers, locally otherwise. */
  private async record(
    id: string,
    o: {
      ok: boolean;
      error?: string;
      latencyMs?: number;
      objects?: number;
      bytes?: number;
      freeBytes?: number;
      startedAt?: number;
      scrub?: unknown;
    },
  ): Promise<void> {
    const view = this.views.get(id);
    if (!view) return;
    const now = Date.now();
    let prev: string = view.status;
    let restarted = false;
    try {
      const [p, status, r] = await (this.opts.redis as RedisWithOutcome).troveNodeOutcome(
        this.key(id),
        o.ok ? '1' : '0',
        String(now),
        String(this.opts.offlineAfter),
        String(o.latencyMs ?? ''),
        String(o.objects ?? ''),
        String(o.freeBytes ?? ''),
        String(o.startedAt ?? 0),
        o.error ?? '',
        JSON.stringify(o.scrub ?? null),
        String(o.bytes ?? ''),
      );
      prev = p;
      restarted = r === 1;
      view.status = status;
      view.failures = o.ok ? 0 : view.failures + 1;
    } catch {
      // Redis down: the same state machine on this gateway's own observations.
      view.failures = o.ok ? 0 : view.failures + 1;
      view.status = o.ok
        ? 'online'
        : view.failures >= this.opts.offlineAfter
          ? 'offline'
          : 'suspect';
    }
    if (o.ok) {
      view.lastSeen = now;
      view.lastError = null;
      if (o.latencyMs !== undefined) view.latencyMs = o.latencyMs;
      if (o.objects !== undefined) view.objects = o.objects;
      if (o.bytes !== undefined) view.bytes = o.bytes;
      if (o.freeBytes !== undefined) view.freeBytes = o.freeBytes;
      if (o.scrub !== undefined) {
        if (corruptFound(o.scrub) > corruptFound(view.scrub) && view.scrub !== null)
          this.opts.onCheckNeeded?.(id, 'scrub found corrupt blobs');
        view.scrub = o.scrub;
      }
    } else {
      view.lastError = o.error ?? null;
    }
    if (prev !== view.status) {
      this.statusChanged(id, view.status);
      const level = view.status === 'online' ? 'info' : 'warn';
      this.opts.log[level](
        { node: id, from: prev, err: view.lastError ?? undefined },
        `storage node ${view.status}`,
      );
    }
    const returned = view.status === 'online' && (prev === 'offline' || prev === 'unknown');
    if (returned || restarted)
      this.opts.onCheckNeeded?.(id, restarted ? 'restarted' : 'back online');
  }

  /** Adopts every node's shared record, so this gateway agrees with the others. */
  private async refresh(): Promise<void> {
    const views = [...this.views.values()]; // the layout may change while Redis answers
    const pipeline = this.opts.redis.pipeline();
    for (const view of views) pipeline.hgetall(this.key(view.id));
    let results;
    try {
      results = await pipeline.exec();
    } catch {
      return;
    }
    views.forEach((view, i) => {
      const record = results?.[i]?.[1] as Record<string, string> | undefined;
      if (!record?.status) return;
      const before = view.status;
      view.status = record.status as NodeStatus;
      if (view.status !== before) this.statusChanged(view.id, view.status);
      view.failures = Number(record.failures ?? 0);
      view.lastSeen = record.last_seen ? Number(record.last_seen) : view.lastSeen;
      view.lastError = record.last_error || null;
      view.latencyMs = numberOr(record.latency_ms, view.latencyMs);
      view.objects = numberOr(record.objects, view.objects);
      view.bytes = numberOr(record.bytes, view.bytes);
      view.freeBytes = numberOr(record.free_bytes, view.freeBytes);
      if (record.scrub) view.scrub = JSON.parse(record.scrub) as unknown;
    });
  }

  private key(id: string): string {
    return `${this.opts.prefix}:node:${id}`;
  }
}

function unprobed(node: NodeAddress): NodeView {
  return {
    id: node.id,
    url: node.url,
    status: 'offline',
    lastSeen: null,
    lastError: 'not probed yet',
    latencyMs: null,
    objects: null,
    bytes: null,
    freeBytes: null,
    failures: 0,
    scrub: null,
  };
}

function corruptFound(scrub: unknown): number {
  return (scrub as { corrupt_found?: number } | null)?.corrupt_found ?? 0;
}

function numberOr(text: string | undefined, fallback: number | null): number | null {
  return text ? Number(text) : fallback;
}

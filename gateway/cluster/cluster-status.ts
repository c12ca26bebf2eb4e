/**
 * GET /ready and GET /api/cluster: what this gateway knows of the cluster,
 * for load balancers (ready or not) and for people (every node, the objects,
 * the repairs). Their OpenAPI entries are in cluster-openapi.ts.
 */
import type { Context } from 'hono';
import type { Redis } from 'ioredis';
import type { GatewayConfig } from '../../shared/config.js';
import type { JobPublisher } from '../../shared/amqp.js';
import { repairStatsKey } from '../../shared/jobs.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import type { NodeStates, NodeView } from './node-registry.js';
import { activeNodes, layoutWarnings, zonesOf, type Layout } from '../../shared/layout.js';
import type { LayoutView } from '../../shared/layout-watcher.js';
import {
  readProgress,
  rebalanceRates,
  type RebalanceProgress,
} from '../../shared/rebalance-progress.js';

export interface ClusterStatusDeps {
  store: MetadataStore;
  registry: NodeStates;
  layout: LayoutView;
  redis: Redis;
  amqp: JobPublisher;
  clusterName: string;
  replication: GatewayConfig['replication'];
}

/** Ready when the metadata, Redis and WRITE_QUORUM nodes answer; the queue is not required. */
export async function handleReady(deps: ClusterStatusDeps, c: Context) {
  const online = deps.registry.onlineCount();
  const [metadata, redis] = await Promise.all([
    deps.store.ping().catch(() => false),
    deps.redis.ping().then(
      (r) => r === 'PONG',
      () => false,
    ),
  ]);
  const queue = deps.amqp.connected;
  // Uploads and downloads work without the queue (the sweep catches up).
  const quorum = deps.replication.writeQuorum;
  const ready = metadata && redis && online >= quorum;
  return c.json(
    { ready, metadata, redis, queue, nodes_online: online, write_quorum: quorum },
    ready ? 200 : 503,
  );
}

/**
 * The layout in force with each node as this gateway sees it (health, fill),
 * the objects, the repairs done and queued, and the rebalance's progress.
 */
export async function handleClusterStatus(deps: ClusterStatusDeps, c: Context) {
  const copies = deps.replication.replicationFactor;
  const [counts, queued, stats, progress] = await Promise.all([
    deps.store.counts(copies),
    deps.amqp.depth(deps.amqp.names.replicaRepair),
    deps.redis
      .hgetall(repairStatsKey(deps.clusterName))
      .catch(() => ({}) as Record<string, string>),
    readProgress(deps.redis, deps.clusterName).catch(() => undefined),
  ]);
  const layout = deps.layout.current();
  return c.json({
    layout: layoutJson(layout, copies),
    nodes: deps.registry.all().map((n) => nodeJson(n, layout)),
    objects: counts.objects,
    under_replicated: counts.underReplicated,
    repairs: {
      queued,
      done: Number(stats.done ?? 0),
      bytes: Number(stats.bytes ?? 0),
    },
    rebalance: progress ? rebalanceJson(progress) : null,
    replication_factor: copies,
    write_quorum: deps.replication.writeQuorum,
  });
}

function rebalanceJson(progress: RebalanceProgress) {
  const rates = rebalanceRates(progress);
  return {
    state: progress.state,
    layout_version: progress.layoutVersion,
    total: progress.total,
    scanned: progress.scanned,
    moved: progress.moved,
    removed: progress.removed,
    bytes: progress.bytes,
    left: progress.left,
    objects_per_second: rates.objectsPerSecond,
    bytes_per_second: rates.bytesPerSecond,
    started_at: new Date(progress.startedAt).toISOString(),
    updated_at: new Date(progress.updatedAt).toISOString(),
  };
}

function layoutJson(layout: Layout, copies: number) {
  return {
    version: layout.version,
    created_at: new Date(layout.createdAt).toISOString(),
    note: layout.note,
    zones: zonesOf(layout.nodes).map((zone) => {
      const nodes = layout.nodes.filter((n) => n.zone === zone);
      return {
        zone,
        nodes: nodes.map((n) => n.id),
        weight: activeNodes(nodes).reduce((sum, n) => sum + n.weight, 0),
      };
    }),
    warnings: layoutWarnings(layout.nodes, copies),
  };
}

/** A node's health as this gateway sees it, with its place in the layout and how full it is. */
function nodeJson(n: NodeView, layout: Layout) {
  const placed = layout.nodes.find((l) => l.id === n.id);
  const activeWeight = activeNodes(layout.nodes).reduce((sum, l) => sum + l.weight, 0);
  const disk = n.bytes !== null && n.freeBytes !== null ? n.bytes + n.freeBytes : null;
  return {
    id: n.id,
    url: n.url,
    status: n.status,
    zone: placed?.zone ?? null,
    weight: placed?.weight ?? null,
    role: placed?.role ?? null,
    share:
      placed?.role === 'active' && activeWeight > 0
        ? Math.round((placed.weight / activeWeight) * 1000) / 1000
        : 0,
    last_seen: n.lastSeen === null ? null : new Date(n.lastSeen).toISOString(),
    latency_ms: n.latencyMs,
    objects: n.objects,
    bytes: n.bytes,
    free_bytes: n.freeBytes,
    fill: disk ? Math.round(((n.bytes ?? 0) / disk) * 10000) / 10000 : null,
    last_error: n.lastError,
    scrub: n.scrub,
  };
}

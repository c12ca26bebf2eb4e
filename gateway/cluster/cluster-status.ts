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
import type { NodeStates } from './node-registry.js';

export interface ClusterStatusDeps {
  store: MetadataStore;
  registry: NodeStates;
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

/** The nodes as this gateway sees them, with the object counts and the repairs done and queued. */
export async function handleClusterStatus(deps: ClusterStatusDeps, c: Context) {
  const [counts, queued, stats] = await Promise.all([
    deps.store.counts(deps.replication.replicationFactor),
    deps.amqp.depth(deps.amqp.names.replicaRepair),
    deps.redis
      .hgetall(repairStatsKey(deps.clusterName))
      .catch(() => ({}) as Record<string, string>),
  ]);
  return c.json({
    nodes: deps.registry.all().map((n) => ({
      id: n.id,
      url: n.url,
      status: n.status,
      last_seen: n.lastSeen === null ? null : new Date(n.lastSeen).toISOString(),
      latency_ms: n.latencyMs,
      objects: n.objects,
      free_bytes: n.freeBytes,
      last_error: n.lastError,
      scrub: n.scrub,
    })),
    objects: counts.objects,
    under_replicated: counts.underReplicated,
    repairs: {
      queued,
      done: Number(stats.done ?? 0),
      bytes: Number(stats.bytes ?? 0),
    },
    replication_factor: deps.replication.replicationFactor,
    write_quorum: deps.replication.writeQuorum,
  });
}

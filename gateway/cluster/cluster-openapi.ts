/**
 * The OpenAPI entries of the routes that report on the gateway and its
 * cluster (GET /api/cluster, /health, /ready: app.ts; GET /metrics:
 * ../metrics.ts), and the JSON they answer with.
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { binary, error, json, withCurl } from '../http/api-schemas.js';

const CLUSTER_NODE = z.object({
  id: z.string(),
  url: z.string(),
  status: z.enum(['online', 'suspect', 'offline']),
  zone: z.string().nullable().meta({ description: 'Its failure domain in the layout.' }),
  weight: z.number().nullable(),
  role: z.enum(['active', 'draining']).nullable().meta({
    description: '`draining`: serves what it holds, takes no new replicas, is being emptied.',
  }),
  share: z
    .number()
    .meta({ description: 'The share of new replicas its weight gives it (0 to 1).' }),
  last_seen: z.string().nullable(),
  latency_ms: z.number().nullable(),
  objects: z.number().int().nullable(),
  bytes: z.number().int().nullable(),
  free_bytes: z.number().int().nullable(),
  fill: z
    .number()
    .nullable()
    .meta({ description: 'Bytes of blobs over bytes of blobs plus free disk (0 to 1).' }),
  last_error: z.string().nullable(),
  scrub: z
    .looseObject({})
    .nullable()
    .meta({ description: "The node's last full checksum pass (docs/storage-node.md)." }),
});

const LAYOUT = z.object({
  version: z.number().int(),
  created_at: z.string(),
  note: z.string(),
  zones: z.array(z.object({ zone: z.string(), nodes: z.array(z.string()), weight: z.number() })),
  warnings: z.array(z.string()).meta({
    description: 'What keeps the layout from holding every replica in a distinct zone.',
  }),
});

const REBALANCE = z
  .object({
    state: z.enum(['running', 'done', 'incomplete']),
    layout_version: z.number().int(),
    total: z.number().int(),
    scanned: z.number().int(),
    moved: z.number().int(),
    removed: z.number().int(),
    bytes: z.number().int(),
    left: z.number().int(),
    objects_per_second: z.number(),
    bytes_per_second: z.number(),
    started_at: z.string(),
    updated_at: z.string(),
  })
  .nullable()
  .meta({ description: 'The newest rebalance pass (docs/layout.md); null before the first.' });

const CLUSTER = z
  .object({
    layout: LAYOUT,
    nodes: z.array(CLUSTER_NODE),
    objects: z.number().int(),
    under_replicated: z.number().int(),
    repairs: z.object({
      queued: z.number().int().nullable(),
      done: z.number().int(),
      bytes: z.number().int(),
    }),
    rebalance: REBALANCE,
    replication_factor: z.number().int(),
    write_quorum: z.number().int(),
  })
  .meta({ id: 'Cluster' });

const READY = z
  .object({
    ready: z.boolean(),
    metadata: z.boolean(),
    redis: z.boolean(),
    queue: z.boolean().meta({ description: 'RabbitMQ connected (not required to be ready).' }),
    nodes_online: z.number().int(),
    write_quorum: z.number().int(),
  })
  .meta({ id: 'Ready' });

const HEALTH = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });

export function clusterRoutes(): RouteConfig[] {
  return [
    {
      method: 'get',
      path: '/api/cluster',
      tags: ['Cluster'],
      summary: 'The storage nodes and replication, as this gateway sees them',
      description: withCurl('', 'curl http://localhost:8080/api/cluster'),
      responses: { 200: json(CLUSTER, 'The cluster.') },
    },
    {
      method: 'get',
      path: '/health',
      tags: ['Cluster'],
      summary: 'Liveness',
      description: withCurl('', 'curl http://localhost:8080/health'),
      responses: { 200: json(HEALTH, 'Alive.') },
    },
    {
      method: 'get',
      path: '/ready',
      tags: ['Cluster'],
      summary: 'Readiness: metadata, Redis and WRITE_QUORUM nodes',
      description: withCurl('', 'curl http://localhost:8080/ready'),
      responses: { 200: json(READY, 'Ready.'), 503: json(READY, 'Not ready.') },
    },
    {
      method: 'get',
      path: '/metrics',
      tags: ['Cluster'],
      summary: 'Prometheus metrics (docs/metrics.md)',
      description: withCurl('', 'curl http://localhost:8080/metrics'),
      security: [{ metricsToken: [] }, {}],
      responses: {
        200: binary(['text/plain'], 'The Prometheus text format.'),
        401: error('UNAUTHORIZED: METRICS_TOKEN is set and the request does not carry it'),
      },
    },
  ];
}

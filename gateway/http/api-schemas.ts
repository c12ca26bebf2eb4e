/**
 * The JSON the gateway answers, as zod schemas: /openapi.json documents every
 * response from these (test/openapi.test.ts checks real answers against the
 * document). The request side (options, ids, names) is validated by schemas
 * that live beside the code that reads them: upload-options.ts,
 * shared/image-ops.ts, shared/keys.ts, variants.ts, upload.ts, qr.ts.
 */
import { z } from 'zod';
import { FILE_ID_SCHEMA } from '../../shared/keys.js';
import { FILE_LIST_STATUSES } from '../../shared/metadata-store.js';

const EXAMPLE_ID = 'JrJ3b1Z0RkqY0cY3Gq5mNw';
const EXAMPLE_BASE = 'http://192.168.1.20:8080';
const EXAMPLE_SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

export const ERROR_BODY = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable, machine-readable: FILE_NOT_FOUND, …' }),
      message: z.string().meta({ description: 'For people: says what was wrong.' }),
    }),
  })
  .meta({
    id: 'Error',
    description: 'Every error answer.',
    example: { error: { code: 'FILE_NOT_FOUND', message: 'no such file' } },
  });

const REPLICA = z
  .object({
    node: z.string(),
    state: z.enum(['ok', 'missing', 'corrupt']),
  })
  .meta({ id: 'Replica' });

const VARIANT = z
  .object({
    url: z
      .string()
      .meta({ description: 'Where it is served (the compressed copy counts as a download).' }),
    size: z.number().int().meta({ description: 'Bytes.' }),
    width: z.number().int().meta({ description: 'Pixels, of one frame.' }),
    height: z.number().int(),
    content_type: z.string(),
    sha256: z.string(),
  })
  .meta({ id: 'Variant' });

const PROCESSING = z
  .object({
    state: z.enum(['pending', 'done', 'failed', 'skipped']).meta({
      description:
        'pending: variants not made yet; done: see variants; failed: see reason; skipped: not an image.',
    }),
    reason: z.string().optional().meta({ description: 'Why processing failed.' }),
    variants: z
      .object({ thumbnail: VARIANT.optional(), compressed: VARIANT.optional() })
      .optional()
      .meta({ description: 'The variants made so far.' }),
  })
  .meta({ id: 'Processing' });

export const FILE = z
  .object({
    id: FILE_ID_SCHEMA,
    name: z.string(),
    size: z.number().int().meta({ description: 'Bytes.' }),
    content_type: z.string().meta({ description: "Detected from the file's bytes at upload." }),
    sha256: z.string(),
    status: z.enum(['active', 'exhausted', 'expired', 'deleted']),
    max_downloads: z.number().int().meta({ description: '0 = unlimited.' }),
    downloads_used: z.number().int(),
    downloads_left: z.number().int().nullable().meta({ description: 'null when unlimited.' }),
    created_at: z.string(),
    expires_at: z.string(),
    deleted_at: z.string().nullable(),
    url: z.string().meta({ description: 'The download itself: every GET counts.' }),
    share_url: z.string().meta({ description: 'The page to hand people: never counts.' }),
    replicas: z.array(REPLICA),
    processing: PROCESSING,
  })
  .meta({
    id: 'File',
    example: {
      id: EXAMPLE_ID,
      name: 'photo.jpg',
      size: 48213,
      content_type: 'image/jpeg',
      sha256: EXAMPLE_SHA,
      status: 'active',
      max_downloads: 3,
      downloads_used: 1,
      downloads_left: 2,
      created_at: '2026-11-23T12:00:00.000Z',
      expires_at: '2026-11-23T13:00:00.000Z',
      deleted_at: null,
      url: `${EXAMPLE_BASE}/download/${EXAMPLE_ID}`,
      share_url: `${EXAMPLE_BASE}/s/${EXAMPLE_ID}`,
      replicas: [
        { node: 'node2', state: 'ok' },
        { node: 'node1', state: 'ok' },
        { node: 'node3', state: 'ok' },
      ],
      processing: { state: 'pending' },
    },
  });

const UPLOADED_FILE = FILE.extend({
  delete_token: z.string().meta({
    description: 'Shown only here (Trove keeps its hash): send it to DELETE /files/{id}.',
  }),
}).meta({ id: 'UploadedFile' });

export const UPLOAD_ANSWER = z
  .union([UPLOADED_FILE, z.object({ files: z.array(UPLOADED_FILE) })])
  .meta({ id: 'UploadAnswer', description: 'One file: the file itself; several: {"files":[…]}.' });

const CLUSTER_NODE = z.object({
  id: z.string(),
  url: z.string(),
  status: z.enum(['online', 'suspect', 'offline']),
  last_seen: z.string().nullable(),
  latency_ms: z.number().nullable(),
  objects: z.number().int().nullable(),
  free_bytes: z.number().int().nullable(),
  last_error: z.string().nullable(),
  scrub: z
    .looseObject({})
    .nullable()
    .meta({ description: "The node's last full checksum pass (docs/storage-node.md)." }),
});

export const CLUSTER = z
  .object({
    nodes: z.array(CLUSTER_NODE),
    objects: z.number().int(),
    under_replicated: z.number().int(),
    repairs: z.object({
      queued: z.number().int().nullable(),
      done: z.number().int(),
      bytes: z.number().int(),
    }),
    replication_factor: z.number().int(),
    write_quorum: z.number().int(),
  })
  .meta({ id: 'Cluster' });

export const READY = z
  .object({
    ready: z.boolean(),
    metadata: z.boolean(),
    redis: z.boolean(),
    queue: z.boolean().meta({ description: 'RabbitMQ connected (not required to be ready).' }),
    nodes_online: z.number().int(),
    write_quorum: z.number().int(),
  })
  .meta({ id: 'Ready' });

export const HEALTH = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });

export const PAGE_CONFIG = z
  .object({
    upload_token_required: z.boolean(),
    max_upload_bytes: z.number().int(),
    max_files_per_upload: z.number().int(),
    default_max_downloads: z.number().int(),
    max_downloads_limit: z.number().int(),
    default_ttl_seconds: z.number().int(),
    max_ttl_seconds: z.number().int(),
  })
  .meta({ id: 'PageConfig' });

// ── The admin API (admin.ts; its request schemas are exported there) ─────────

const ADMIN_FILE = z
  .object({
    id: z.string(),
    name: z.string(),
    size: z.number().int(),
    content_type: z.string(),
    sha256: z.string(),
    status: z.enum(FILE_LIST_STATUSES),
    max_downloads: z.number().int(),
    downloads_used: z.number().int(),
    downloads_left: z.number().int().nullable(),
    created_at: z.string(),
    expires_at: z.string(),
    deleted_at: z.string().nullable(),
    delete_reason: z.string().nullable(),
    processing: z.string(),
    gateway: z.string().meta({ description: 'The gateway that received the upload.' }),
    url: z.string(),
  })
  .meta({ id: 'AdminFile' });

export const ADMIN_FILE_LIST = z
  .object({
    files: z.array(ADMIN_FILE),
    next_cursor: z.string().nullable().meta({ description: 'The cursor of the next page.' }),
  })
  .meta({ id: 'AdminFileList' });

export const ADMIN_REPAIRS = z
  .union([
    z.object({ node_checks: z.number().int(), repairs_queued: z.number().int() }),
    z.object({
      file_id: z.string(),
      replicas: z.array(
        z.object({
          key: z.string(),
          node: z.string(),
          state: z.enum(['ok', 'missing', 'corrupt']),
          reachable: z.boolean(),
        }),
      ),
      repairs_queued: z.number().int(),
    }),
  ])
  .meta({ id: 'AdminRepairs', description: 'Everything queued, or one file checked.' });

export const ADMIN_SCRUBS = z
  .object({
    nodes: z.array(
      z.object({
        node: z.string(),
        started: z.boolean(),
        scrub: z.looseObject({}).nullable().optional(),
        error: z.string().optional(),
      }),
    ),
  })
  .meta({ id: 'AdminScrubs' });

export const ADMIN_QUEUES = z
  .object({
    connected: z.boolean(),
    work: z.record(z.string(), z.number().int().nullable()),
    dead_letters: z.record(z.string(), z.number().int().nullable()),
    delayed: z.number().int().nullable(),
  })
  .meta({ id: 'AdminQueues', description: 'Messages waiting per queue (null: unknown).' });

/**
 * The OpenAPI entries of the admin API (admin.ts, which exports the request
 * schemas it validates with), and the JSON it answers with.
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { FILE_LIST_STATUSES } from '../../shared/metadata-store.js';
import {
  adminFileListQuery,
  adminRepairRequest,
  adminScrubRequest,
  adminUploadLinkRequest,
} from './admin.js';
import { error, ID_PARAMS, json, withCurl } from './api-schemas.js';
import { uploadLinkAnswer } from '../upload/upload-links.js';
import { s3AdminApiEntries } from '../s3/s3-admin-openapi.js';

const ADMIN_SECURITY: Record<string, string[]>[] = [{ adminToken: [] }];
const ADMIN_UNAUTHORIZED = error('ADMIN_API_DISABLED (no ADMIN_TOKEN), UNAUTHORIZED');

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

const ADMIN_FILE_LIST = z
  .object({
    files: z.array(ADMIN_FILE),
    next_cursor: z.string().nullable().meta({ description: 'The cursor of the next page.' }),
  })
  .meta({ id: 'AdminFileList' });

const ADMIN_REPAIRS = z
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

const ADMIN_SCRUBS = z
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

const ADMIN_QUEUES = z
  .object({
    connected: z.boolean(),
    work: z.record(z.string(), z.number().int().nullable()),
    dead_letters: z.record(z.string(), z.number().int().nullable()),
    delayed: z.number().int().nullable(),
  })
  .meta({ id: 'AdminQueues', description: 'Messages waiting per queue (null: unknown).' });

export function adminRoutes(): RouteConfig[] {
  const admin = (route: Omit<RouteConfig, 'tags' | 'security'>): RouteConfig => ({
    ...route,
    tags: ['Admin'],
    security: ADMIN_SECURITY,
    responses: { ...route.responses, 401: ADMIN_UNAUTHORIZED },
  });
  const jsonBody = (schema: z.ZodType, example?: object) => ({
    body: { content: { 'application/json': { schema, ...(example && { example }) } } },
  });
  const invalid = error('INVALID_PARAMETER, INVALID_JSON, INVALID_CURSOR');
  const noQueue = error('QUEUE_UNAVAILABLE: RabbitMQ is not reachable (Retry-After: 2)');
  return [
    admin({
      method: 'get',
      path: '/admin/files',
      summary: 'List files, newest first, a page at a time',
      request: { query: adminFileListQuery },
      responses: { 200: json(ADMIN_FILE_LIST, 'A page of files.'), 400: invalid },
    }),
    admin({
      method: 'delete',
      path: '/admin/files/{id}',
      summary: 'Delete a file now, without its delete token',
      request: { params: ID_PARAMS },
      responses: { 204: { description: 'Deleted.' }, 404: error('FILE_NOT_FOUND') },
    }),
    admin({
      method: 'post',
      path: '/admin/repairs',
      summary: "Check and repair one file's replicas, or queue a repair of everything",
      request: jsonBody(adminRepairRequest, {}),
      responses: {
        202: json(ADMIN_REPAIRS, 'Queued.'),
        400: invalid,
        404: error('FILE_NOT_FOUND'),
        410: error('FILE_DELETED'),
        503: noQueue,
      },
    }),
    admin({
      method: 'post',
      path: '/admin/scrub',
      summary: 'Start a full checksum pass on one node or all',
      request: jsonBody(adminScrubRequest),
      responses: {
        202: json(ADMIN_SCRUBS, 'Started (or already running).'),
        400: invalid,
        404: error('NODE_NOT_FOUND'),
      },
    }),
    admin({
      method: 'get',
      path: '/admin/queues',
      summary: 'Messages waiting in the job queues',
      description: withCurl(
        '',
        'curl -H "Authorization: Bearer $ADMIN_TOKEN" http://localhost:8080/admin/queues',
      ),
      responses: { 200: json(ADMIN_QUEUES, 'The queues.') },
    }),
    admin({
      method: 'post',
      path: '/admin/upload-links',
      summary: 'Mint a signed upload link',
      request: jsonBody(adminUploadLinkRequest),
      responses: { 201: json(uploadLinkAnswer, 'The link.'), 400: invalid },
    }),
    ...s3AdminApiEntries().map(admin),
  ];
}

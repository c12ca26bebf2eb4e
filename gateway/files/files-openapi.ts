/**
 * The OpenAPI entries of a file's metadata (GET /files/{id}, its JSON made by
 * file-view.ts) and its deletion (DELETE /files/{id}, deletion.ts), and the
 * file object, which uploads answer with too (upload-openapi.ts).
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { FILE_ID_SCHEMA } from '../../shared/keys.js';
import { error, ID_PARAMS, json } from '../http/api-schemas.js';

const EXAMPLE_ID = 'JrJ3b1Z0RkqY0cY3Gq5mNw';
const EXAMPLE_BASE = 'http://192.168.1.20:8080';
const EXAMPLE_SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

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

export function fileRoutes(): RouteConfig[] {
  const token = z.string().meta({
    description: 'The delete_token of the upload answer.',
    example: 'q0CfW0E6i2w0Vh0d7i0PZ1QdD0iS3nU1',
  });
  return [
    {
      method: 'get',
      path: '/files/{id}',
      tags: ['Files'],
      summary: "A file's metadata (never counts)",
      request: { params: ID_PARAMS },
      responses: { 200: json(FILE, 'The file.'), 404: error('FILE_NOT_FOUND') },
    },
    {
      method: 'delete',
      path: '/files/{id}',
      tags: ['Files'],
      summary: 'Delete a file now',
      description:
        'Send the delete token in X-Delete-Token (or ?delete_token=). Deleting again is 204 too.',
      request: {
        params: ID_PARAMS,
        query: z.object({ delete_token: token.optional() }),
        headers: z.object({ 'x-delete-token': token.optional() }),
      },
      responses: {
        204: { description: 'A tombstone now; the blobs go after DELETE_GRACE_SECONDS.' },
        403: error('DELETE_TOKEN_REQUIRED, WRONG_DELETE_TOKEN'),
        404: error('FILE_NOT_FOUND'),
      },
    },
  ];
}

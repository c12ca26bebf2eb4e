/**
 * The OpenAPI entries of the byte-serving routes (GET and HEAD of
 * /download/{id} and /files/{id}/thumbnail: download.ts) and of the share page
 * (/s/{id}: share-page.ts).
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import {
  binary,
  error,
  html,
  ID_PARAMS,
  RATE_LIMITED,
  type Responses,
} from '../http/api-schemas.js';
import { DOWNLOAD_VARIANT } from '../files/variants.js';

/** Request headers of the byte-serving routes (parsed by shared/range.ts and download.ts). */
const READ_HEADERS = z.object({
  range: z
    .string()
    .optional()
    .meta({ description: 'One range: bytes=a-b, a- or -n.', example: 'bytes=0-1023' }),
  'if-none-match': z
    .string()
    .optional()
    .meta({
      description: 'The ETag (the quoted sha256) of a copy you have: 304 if it is still this file.',
      example: `"${'0'.repeat(64)}"`,
    }),
});

export function downloadRoutes(): RouteConfig[] {
  const bytes: Responses = {
    200: binary(['*/*'], 'The bytes, with ETag, Content-Disposition and X-Downloads-Left.'),
    206: binary(['*/*'], 'The range asked for, with Content-Range.'),
    304: { description: 'If-None-Match matched: nothing sent.' },
    404: error('FILE_NOT_FOUND, NOT_READY, NO_VARIANT'),
    410: error('FILE_EXPIRED, FILE_DELETED, DOWNLOAD_LIMIT_REACHED'),
    416: error('RANGE_NOT_SATISFIABLE (with Content-Range: bytes */<size>)'),
    429: RATE_LIMITED,
  };
  const download = {
    tags: ['Download'],
    request: {
      params: ID_PARAMS,
      query: z.object({ variant: DOWNLOAD_VARIANT.optional() }),
      headers: READ_HEADERS,
    },
  };
  const thumbnail = { tags: ['Download'], request: { params: ID_PARAMS, headers: READ_HEADERS } };
  return [
    {
      ...download,
      method: 'get',
      path: '/download/{id}',
      summary: 'Download a file (counts as a download)',
      responses: {
        ...bytes,
        400: error('UNKNOWN_VARIANT'),
        503: error('NO_REPLICA_AVAILABLE, NODES_BUSY, COUNTER_UNAVAILABLE (Retry-After: 2)'),
      },
    },
    {
      ...download,
      method: 'head',
      path: '/download/{id}',
      summary: 'The headers of a download (never counts)',
      responses: { ...bytes, 400: error('UNKNOWN_VARIANT') },
    },
    {
      ...thumbnail,
      method: 'get',
      path: '/files/{id}/thumbnail',
      summary: 'The 256 px WebP thumbnail (never counts)',
      responses: { ...bytes, 503: error('NO_REPLICA_AVAILABLE, NODES_BUSY (Retry-After: 2)') },
    },
    {
      ...thumbnail,
      method: 'head',
      path: '/files/{id}/thumbnail',
      summary: 'The headers of the thumbnail',
      responses: bytes,
    },
  ];
}

/** The share page: what to hand people, never a download. */
export const sharePageRoute: RouteConfig = {
  method: 'get',
  path: '/s/{id}',
  tags: ['Pages'],
  summary: 'The share page (never counts)',
  request: { params: ID_PARAMS },
  responses: {
    200: html('The page.'),
    404: html('Unknown id.'),
    410: html('Expired, deleted or used up.'),
    429: html('Over the download-attempt or miss limit (RATE_LIMITED), with Retry-After.'),
  },
};

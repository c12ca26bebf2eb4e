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
  'if-range': z.string().optional().meta({
    description:
      'The ETag of the copy a Range continues: under another ETag the Range is ignored and the whole file sent, 200.',
  }),
});

/** GET /download/{id}: which requests count, and the grant that lets a cut-off download resume without counting again. */
const COUNTING =
  'A 200 or 206 takes one download of a limited file, and gives its client a grant to resume it ' +
  '(DOWNLOAD_GRANT_TTL_SECONDS, renewed by each resume): held by the client address (in Redis) and by ' +
  'the trove_grant cookie it sets. While the grant lasts, a resume (a Range starting past byte 0, or ' +
  'any Range under an If-Range matching the ETag) is served and counts nothing, even once the downloads ' +
  'are used up; anything else counts. See docs/api.md, "What counts as a download".';

/** The headers of a counted GET's 200 and 206. */
const COUNTED_HEADERS = z.object({
  'x-downloads-left': z.string().meta({
    description: 'Downloads left after this one, or `unlimited`; a resume leaves it unchanged.',
  }),
  'set-cookie': z.string().optional().meta({
    description:
      'A limited file only: trove_grant=<expiry>.<signature>; Max-Age=<grant lifetime>; Path=/download/<id>; HttpOnly; SameSite=Lax.',
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
      summary: 'Download a file (counts as a download, unless it resumes one)',
      description: COUNTING,
      request: {
        ...download.request,
        cookies: z.object({
          trove_grant: z.string().optional().meta({
            description:
              'The grant a counted download of this file set: a resume with it counts nothing.',
          }),
        }),
      },
      responses: {
        ...bytes,
        200: { ...bytes[200]!, headers: COUNTED_HEADERS },
        206: { ...bytes[206]!, headers: COUNTED_HEADERS },
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

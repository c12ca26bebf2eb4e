/**
 * The OpenAPI entries of the gateway's own pages and what the browser page
 * calls (app.ts mounts them: /, /static/{name} from static-files.ts, /docs
 * and /openapi.json from api-docs.ts, /qr from qr.ts, /api/config). The
 * feature pages among them are documented by their rooms: the share page in
 * download-openapi.ts, an upload link's page in upload-openapi.ts.
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { binary, error, html, json, withCurl } from './api-schemas.js';
import { QR_TEXT } from './qr.js';

const PAGE_CONFIG = z
  .object({
    upload_token_required: z.boolean(),
    max_upload_bytes: z.number().int(),
    max_files_per_upload: z.number().int(),
    default_max_downloads: z.number().int(),
    max_downloads_limit: z.number().int(),
    default_ttl_seconds: z.number().int(),
    max_ttl_seconds: z.number().int(),
    resumable_path: z.string().meta({ description: 'Where tus uploads go.', example: '/tus' }),
    resumable_threshold_bytes: z
      .number()
      .int()
      .meta({ description: 'The page sends larger files through tus.' }),
    resumable_chunk_bytes: z.number().int().meta({ description: 'Bytes per PATCH of the page.' }),
  })
  .meta({ id: 'PageConfig' });

/** The browser page, its files, and this documentation. */
export function pageRoutes(): RouteConfig[] {
  const page = (path: string, summary: string, command: string): RouteConfig => ({
    method: 'get',
    path,
    tags: ['Pages'],
    summary,
    description: withCurl('', command),
    responses: { 200: html('The page.') },
  });
  return [
    page('/', 'The browser page', 'curl http://localhost:8080/'),
    page('/docs', 'This documentation', 'curl http://localhost:8080/docs'),
    {
      method: 'get',
      path: '/openapi.json',
      tags: ['Pages'],
      summary: 'This document',
      description: withCurl('', 'curl http://localhost:8080/openapi.json'),
      responses: { 200: { description: 'OpenAPI 3.1.', content: { 'application/json': {} } } },
    },
    {
      method: 'get',
      path: '/static/{name}',
      tags: ['Pages'],
      summary: "The browser page's files",
      request: {
        params: z.object({ name: z.string().meta({ example: 'app.css' }) }),
      },
      responses: {
        200: binary(['text/css', 'text/javascript', 'text/html'], 'The file.'),
        304: { description: 'Not modified.' },
        404: error('NOT_FOUND'),
      },
    },
  ];
}

/** What the browser page calls besides the API: QR codes and the limits it shows. */
export function pageHelperRoutes(): RouteConfig[] {
  return [
    {
      method: 'get',
      path: '/qr',
      tags: ['Pages'],
      summary: 'A QR code as SVG',
      request: { query: z.object({ text: QR_TEXT }) },
      responses: {
        200: binary(['image/svg+xml'], 'The QR code.'),
        400: error('INVALID_OPTION'),
      },
    },
    {
      method: 'get',
      path: '/api/config',
      tags: ['Pages'],
      summary: 'What the browser page needs to know',
      description: withCurl('', 'curl http://localhost:8080/api/config'),
      responses: { 200: json(PAGE_CONFIG, 'The limits.') },
    },
  ];
}

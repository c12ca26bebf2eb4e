/**
 * The OpenAPI 3.1 document of the gateway's public API (served at
 * /openapi.json, shown at /docs). It is generated from the zod schemas the
 * handlers validate requests with (upload options, image options, ids,
 * names) and the schemas of the JSON they answer (api-schemas.ts), so the
 * two cannot drift apart. test/openapi.test.ts checks that every route the
 * gateway serves is here and that every example in it is accepted.
 *
 * Upload, /process and /batch bodies are streamed by their handlers, never
 * parsed by a validator: their bodies are only described here.
 */
import { createRoute, OpenAPIHono, type RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { FORMAT_TYPES, IMAGE_OPTION_SCHEMAS, IMAGE_OPTIONS_QUERY } from '../../shared/image-ops.js';
import { FILE_ID_SCHEMA } from '../../shared/keys.js';
import {
  adminFileListQuery,
  adminRepairRequest,
  adminScrubRequest,
  adminUploadLinkRequest,
} from './admin.js';
import {
  ADMIN_FILE_LIST,
  ADMIN_QUEUES,
  ADMIN_REPAIRS,
  ADMIN_SCRUBS,
  CLUSTER,
  ERROR_BODY,
  FILE,
  HEALTH,
  PAGE_CONFIG,
  READY,
  UPLOAD_ANSWER,
} from './api-schemas.js';
import { QR_TEXT } from './qr.js';
import type { GatewayConfig } from '../../shared/config.js';
import { uploadOptionSchemas } from '../upload/upload-options.js';
import { UPLOAD_FILENAME } from '../upload/upload.js';
import { uploadLinkAnswer } from '../upload/upload-links.js';
import { DOWNLOAD_VARIANT } from '../files/variants.js';

/** What the document states about this gateway (its limits show in the schemas). */
export interface ApiDocDeps {
  limits: GatewayConfig['limits'];
  uploads: GatewayConfig['uploads'];
}

type Responses = RouteConfig['responses'];

const BINARY = { type: 'string', format: 'binary' } as const;

const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** An error answer (`{"error":{"code","message"}}`); `codes` are the error codes it may carry. */
const error = (codes: string) => json(ERROR_BODY, codes);

const binary = (types: string[], description: string) => ({
  description,
  content: Object.fromEntries(types.map((t) => [t, { schema: BINARY }])),
});

const html = (description: string) => binary(['text/html'], description);

const busy = error('NOT_ENOUGH_NODES, WRITE_QUORUM_FAILED, … (with Retry-After: 2)');
const RATE_LIMITED = error(
  'RATE_LIMITED: too many requests from this client (Retry-After says when)',
);

/** The routes that take an upload token when the gateway has one (UPLOAD_TOKEN). */
const UPLOAD_SECURITY: Record<string, string[]>[] = [{ uploadToken: [] }, {}];
const UNAUTHORIZED = error('UNAUTHORIZED: UPLOAD_TOKEN is set and the request does not carry it');
const ADMIN_SECURITY: Record<string, string[]>[] = [{ adminToken: [] }];
const ADMIN_UNAUTHORIZED = error('ADMIN_API_DISABLED (no ADMIN_TOKEN), UNAUTHORIZED');

/** `?link=` of an upload: a signed upload link's token, in the upload token's place (upload-auth.ts). */
const LINK_TOKEN = z.string().meta({
  description:
    'The token of a signed upload link (POST /admin/upload-links): uploads through it need no upload token.',
});

const ID_PARAMS = z.object({ id: FILE_ID_SCHEMA });

/** A description ending with a curl command: the example request of an operation without parameters. */
const withCurl = (text: string, command: string) =>
  [text, `\`\`\`sh\n${command}\n\`\`\``].filter(Boolean).join('\n\n');

function uploadRoutes(deps: ApiDocDeps): RouteConfig[] {
  const options = uploadOptionSchemas(deps.limits);
  const query = options.query.extend({ link: LINK_TOKEN.optional() });
  const created = {
    ...json(UPLOAD_ANSWER, 'Stored on at least WRITE_QUORUM nodes, metadata committed.'),
    headers: z.object({
      location: z.string().meta({ description: 'The file (one file only): <base>/files/<id>.' }),
    }),
  };
  const refusals: Responses = {
    400: error('INVALID_OPTION, NOT_MULTIPART, MALFORMED_MULTIPART, NO_FILE, EMPTY_FILE, …'),
    401: UNAUTHORIZED,
    403: error('UPLOAD_LINK_INVALID, UPLOAD_LINK_EXPIRED, UPLOAD_LINK_USED_UP (?link=)'),
    413: error(
      `PAYLOAD_TOO_LARGE: a file over ${deps.uploads.maxUploadBytes} bytes, or more than ${deps.uploads.maxFilesPerUpload} files`,
    ),
    415: error('UNSUPPORTED_MEDIA_TYPE: the magic bytes are not an allowed type'),
    429: RATE_LIMITED,
    503: busy,
  };
  return [
    {
      method: 'post',
      path: '/upload',
      tags: ['Upload'],
      summary: 'Upload one or several files (multipart)',
      description:
        'Files in parts named `file`. Options as query parameters or form fields (before or after the file). A request stores all its files or none.',
      security: UPLOAD_SECURITY,
      request: {
        query,
        body: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: z.object({
                file: z.array(z.string().meta({ format: 'binary' })),
                max_downloads: options.max_downloads.optional(),
                ttl: options.ttl.optional(),
              }),
            },
          },
        },
      },
      responses: { 201: created, ...refusals },
    },
    {
      method: 'put',
      path: '/upload/{filename}',
      tags: ['Upload'],
      summary: 'Upload one file (raw body)',
      description: withCurl(
        'The body is the file; options in the query string only.',
        "curl -T photo.jpg 'http://localhost:8080/upload/?max_downloads=0'",
      ),
      security: UPLOAD_SECURITY,
      request: {
        params: z.object({ filename: UPLOAD_FILENAME }),
        query,
        body: { required: true, content: { 'application/octet-stream': { schema: BINARY } } },
      },
      responses: { 201: created, ...refusals },
    },
    {
      method: 'put',
      path: '/upload',
      tags: ['Upload'],
      summary: 'A raw upload without a file name: refused',
      description: 'Always 400 MISSING_FILENAME: name the file, PUT /upload/{filename}.',
      security: UPLOAD_SECURITY,
      responses: { 400: error('MISSING_FILENAME'), 401: UNAUTHORIZED },
    },
  ];
}

function processingRoutes(): RouteConfig[] {
  const optionFields = z.object({
    ...IMAGE_OPTIONS_QUERY.shape,
    file: z.string().meta({ format: 'binary' }),
  });
  const refusals: Responses = {
    400: error('INVALID_OPTION, UNKNOWN_OPTION, NO_FILE, TOO_MANY_FILES, NOT_MULTIPART, …'),
    401: UNAUTHORIZED,
    408: error('BODY_TOO_SLOW: the body came slower than BODY_MIN_RATE; the connection is closed'),
    413: error(
      'PAYLOAD_TOO_LARGE: over MAX_UPLOAD_BYTES, MAX_INPUT_PIXELS, a batch limit or PROCESS_SPOOL_BYTES',
    ),
    415: error('UNSUPPORTED_MEDIA_TYPE: not JPEG, PNG, WebP, GIF, TIFF or AVIF'),
    422: error('INVALID_IMAGE: the image could not be decoded or encoded'),
    429: RATE_LIMITED,
    503: error(
      'PROCESSING_BUSY: every processing slot is busy once the input is in; SPOOL_FULL: no room for the input (Retry-After: 2)',
    ),
  };
  const description =
    'Options in the query string, or as multipart form fields sent before the file (a field overrides the query). An unknown option is a 400.';
  return [
    {
      method: 'post',
      path: '/process',
      tags: ['Processing'],
      summary: 'Process one image, store nothing',
      description: `${description} The body is a multipart \`file\` part or the raw image.`,
      security: UPLOAD_SECURITY,
      request: {
        query: IMAGE_OPTIONS_QUERY,
        body: {
          required: true,
          content: {
            'multipart/form-data': { schema: optionFields },
            'application/octet-stream': { schema: BINARY },
          },
        },
      },
      responses: {
        200: {
          ...binary(Object.values(FORMAT_TYPES), 'The processed image.'),
          headers: z.object({
            'x-image-width': z.string().meta({ description: 'Pixels.' }),
            'x-image-height': z.string().meta({ description: 'Pixels.' }),
          }),
        },
        ...refusals,
      },
    },
    {
      method: 'post',
      path: '/batch',
      tags: ['Processing'],
      summary: 'Process several images into a ZIP, store nothing',
      description: `${description} Images that fail are listed in an errors.txt entry.`,
      security: UPLOAD_SECURITY,
      request: {
        query: IMAGE_OPTIONS_QUERY,
        body: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: optionFields.extend({
                file: z.array(z.string().meta({ format: 'binary' })),
              }),
            },
          },
        },
      },
      responses: { 200: binary(['application/zip'], 'A ZIP, streamed.'), ...refusals },
    },
  ];
}

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

function downloadRoutes(): RouteConfig[] {
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

function fileRoutes(): RouteConfig[] {
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

function clusterRoutes(): RouteConfig[] {
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

function adminRoutes(): RouteConfig[] {
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
  ];
}

function pageRoutes(): RouteConfig[] {
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
    {
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
    },
    {
      method: 'get',
      path: '/u/{token}',
      tags: ['Pages'],
      summary: 'The upload page of a signed upload link',
      request: { params: z.object({ token: LINK_TOKEN }) },
      responses: { 200: html('The page, uploading through the link.'), 403: html('Not valid.') },
    },
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

/** The whole document, for this gateway's limits. */
export function openApiDocument(deps: ApiDocDeps) {
  const api = new OpenAPIHono();
  api.openAPIRegistry.registerComponent('securitySchemes', 'adminToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'ADMIN_TOKEN: the admin API needs it; without it set, the admin API is off (401).',
  });
  api.openAPIRegistry.registerComponent('securitySchemes', 'metricsToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'METRICS_TOKEN: when the gateway has one, GET /metrics needs it.',
  });
  api.openAPIRegistry.registerComponent('securitySchemes', 'uploadToken', {
    type: 'http',
    scheme: 'bearer',
    description:
      'UPLOAD_TOKEN: when the gateway has one, uploads, /process and /batch need it. Downloads, metadata and pages stay open.',
  });
  const routes = [
    ...uploadRoutes(deps),
    ...processingRoutes(),
    ...downloadRoutes(),
    ...fileRoutes(),
    ...clusterRoutes(),
    ...adminRoutes(),
    ...pageRoutes(),
  ];
  for (const route of routes) api.openAPIRegistry.registerPath(createRoute(route));
  return api.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'Trove',
      version: '1',
      description:
        'A self-hosted image store. Every error is JSON: {"error":{"code","message"}}. The prose version, with curl commands, is docs/api.md.',
    },
    tags: [
      { name: 'Upload' },
      { name: 'Processing' },
      { name: 'Download' },
      { name: 'Files' },
      { name: 'Cluster' },
      { name: 'Admin' },
      { name: 'Pages' },
    ],
  });
}

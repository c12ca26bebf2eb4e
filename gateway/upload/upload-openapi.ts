/**
 * The OpenAPI entries of uploads (POST /upload, PUT /upload/{filename}, the
 * refused PUT /upload: upload.ts) and of a signed upload link's page
 * (/u/{token}: upload-links.ts). Their bodies are streamed by the handlers,
 * never parsed by a validator: they are only described here.
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import {
  BINARY,
  error,
  html,
  json,
  RATE_LIMITED,
  UNAUTHORIZED,
  UPLOAD_SECURITY,
  withCurl,
  type Responses,
} from '../http/api-schemas.js';
import type { GatewayConfig } from '../../shared/config.js';
import { FILE } from '../files/files-openapi.js';
import { uploadOptionSchemas } from './upload-options.js';
import { UPLOAD_FILENAME } from './upload.js';

export const UPLOADED_FILE = FILE.extend({
  delete_token: z.string().meta({
    description: 'Shown only here (Trove keeps its hash): send it to DELETE /files/{id}.',
  }),
}).meta({ id: 'UploadedFile' });

const UPLOAD_ANSWER = z
  .union([UPLOADED_FILE, z.object({ files: z.array(UPLOADED_FILE) })])
  .meta({ id: 'UploadAnswer', description: 'One file: the file itself; several: {"files":[…]}.' });

const busy = error('NOT_ENOUGH_NODES, WRITE_QUORUM_FAILED, … (with Retry-After: 2)');

/** `?link=` of an upload: a signed upload link's token, in the upload token's place (upload-auth.ts). */
const LINK_TOKEN = z.string().meta({
  description:
    'The token of a signed upload link (POST /admin/upload-links): uploads through it need no upload token.',
});

/** The upload entries state this gateway's limits. */
export function uploadRoutes(deps: Pick<GatewayConfig, 'limits' | 'uploads'>): RouteConfig[] {
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

/** The upload page of a signed upload link: the browser page, uploading through it. */
export const uploadLinkPageRoute: RouteConfig = {
  method: 'get',
  path: '/u/{token}',
  tags: ['Pages'],
  summary: 'The upload page of a signed upload link',
  request: { params: z.object({ token: LINK_TOKEN }) },
  responses: { 200: html('The page, uploading through the link.'), 403: html('Not valid.') },
};

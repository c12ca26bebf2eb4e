/**
 * The OpenAPI entries of resumable uploads (tus 1.0 at /tus/: tus-routes.ts).
 * The protocol is tus's; these entries say what Trove adds to it (options in
 * Upload-Metadata, its JSON errors, the file object at the end).
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { BINARY, error, RATE_LIMITED, UNAUTHORIZED, UPLOAD_SECURITY } from '../http/api-schemas.js';
import { UPLOADED_FILE } from '../upload/upload-openapi.js';

const TUS_RESUMABLE = z
  .literal('1.0.0')
  .meta({ description: 'The tus version.', example: '1.0.0' });
const UPLOAD_ID = z
  .string()
  .regex(/^[A-Za-z0-9_-]{22}$/)
  .meta({
    description:
      'The upload, from the Location of its creation (not the file id: it is a secret of the uploader).',
    example: 'q1w2e3r4t5y6u7i8o9p0aa',
  });
const OFFSET = z
  .string()
  .regex(/^\d+$/)
  .meta({ description: 'Bytes stored so far.', example: '0' });
const noBody = (description: string) => ({ description });
const gone = {
  404: error('UPLOAD_NOT_FOUND: unknown, terminated, or removed after it expired'),
  410: error('UPLOAD_EXPIRED: incomplete past its Upload-Expires'),
};

export function resumableRoutes(): RouteConfig[] {
  const upload = z.object({ upload_id: UPLOAD_ID });
  return [
    {
      method: 'post',
      path: '/tus/',
      tags: ['Upload'],
      summary: 'Create a resumable upload (tus)',
      description:
        'tus 1.0 creation (and creation-with-upload: a body of `application/offset+octet-stream` is its first bytes). Options in Upload-Metadata: `filename`, `max_downloads`, `ttl` (base64 values). docs/resumable-uploads.md.',
      security: UPLOAD_SECURITY,
      request: {
        headers: z.object({
          'tus-resumable': TUS_RESUMABLE,
          'upload-length': z.string().regex(/^\d+$/).optional().meta({
            description: 'The file size (or Upload-Defer-Length: 1).',
            example: '1024',
          }),
          'upload-defer-length': z.literal('1').optional(),
          'upload-metadata': z.string().optional().meta({
            description: 'key base64value pairs, comma-separated.',
            example: 'filename cGhvdG8uanBn,max_downloads Mw==',
          }),
        }),
      },
      responses: {
        201: {
          ...noBody('Created: Location is the upload URL to PATCH.'),
          headers: z.object({
            location: z.string(),
            'upload-expires': z.string().meta({ description: 'When it is removed if incomplete.' }),
          }),
        },
        400: error('BAD_REQUEST, EMPTY_FILE, INVALID_OPTION'),
        401: UNAUTHORIZED,
        403: error('UPLOAD_LINK_INVALID, UPLOAD_LINK_EXPIRED, UPLOAD_LINK_USED_UP (?link=)'),
        413: error('PAYLOAD_TOO_LARGE: Upload-Length over MAX_UPLOAD_BYTES'),
        429: RATE_LIMITED,
      },
    },
    {
      method: 'options',
      path: '/tus/',
      tags: ['Upload'],
      summary: 'What the tus server offers',
      description: 'Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm.',
      responses: { 204: noBody('The capabilities, as headers.') },
    },
    {
      method: 'head',
      path: '/tus/{upload_id}',
      tags: ['Upload'],
      summary: 'Where a resumable upload stands',
      description:
        'Upload-Offset: the bytes stored; resume with a PATCH from there. Finishes an upload whose last bytes are in.',
      request: { params: upload, headers: z.object({ 'tus-resumable': TUS_RESUMABLE }) },
      responses: {
        200: { ...noBody('Upload-Offset, Upload-Length, Upload-Metadata.') },
        ...gone,
      },
    },
    {
      method: 'patch',
      path: '/tus/{upload_id}',
      tags: ['Upload'],
      summary: 'Send bytes of a resumable upload',
      description:
        'The body goes at Upload-Offset. Upload-Checksum (sha1, sha256, md5) is checked: a mismatch discards the body (460). The request that stores the last byte answers once the file is committed, with Trove-File-Id.',
      request: {
        params: upload,
        headers: z.object({
          'tus-resumable': TUS_RESUMABLE,
          'upload-offset': OFFSET,
          'upload-checksum': z.string().optional().meta({ description: 'algorithm base64digest' }),
        }),
        body: {
          required: true,
          content: { 'application/offset+octet-stream': { schema: BINARY } },
        },
      },
      responses: {
        204: {
          ...noBody('Stored; Upload-Offset is the new offset.'),
          headers: z.object({
            'upload-offset': z.string(),
            'trove-file-id': z
              .string()
              .optional()
              .meta({ description: 'Once complete: the file.' }),
          }),
        },
        400: error('BAD_REQUEST, INVALID_CHECKSUM'),
        409: error('UPLOAD_OFFSET_MISMATCH: HEAD it and resume from its offset'),
        413: error('PAYLOAD_TOO_LARGE'),
        415: error(
          'UNSUPPORTED_MEDIA_TYPE: the first bytes are not an allowed type (the upload ends)',
        ),
        423: error('UPLOAD_LOCKED: another request holds it; retry'),
        460: error('CHECKSUM_MISMATCH: the body was discarded'),
        503: error('NOT_ENOUGH_NODES, WRITE_QUORUM_FAILED (nothing kept; retry)'),
        ...gone,
      },
    },
    {
      method: 'get',
      path: '/tus/{upload_id}',
      tags: ['Upload'],
      summary: 'The file a finished resumable upload made',
      description: 'The answer of POST /upload, delete_token included.',
      request: { params: upload },
      responses: {
        200: {
          description: 'The file.',
          content: { 'application/json': { schema: UPLOADED_FILE } },
        },
        404: error('UPLOAD_NOT_FOUND'),
        409: error('UPLOAD_INCOMPLETE: bytes are missing'),
      },
    },
    {
      method: 'delete',
      path: '/tus/{upload_id}',
      tags: ['Upload'],
      summary: 'End a resumable upload (tus termination)',
      description: 'Its parts are removed from the nodes.',
      request: { params: upload, headers: z.object({ 'tus-resumable': TUS_RESUMABLE }) },
      responses: { 204: noBody('Ended.'), ...gone },
    },
  ];
}

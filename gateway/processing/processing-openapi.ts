/**
 * The OpenAPI entries of direct image processing (POST /process: process.ts;
 * POST /batch: batch.ts). Their bodies are streamed by the handlers, never
 * parsed by a validator: they are only described here, with the image options
 * the handlers validate (shared/image-ops.ts).
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { FORMAT_TYPES, IMAGE_OPTIONS_QUERY } from '../../shared/image-ops.js';
import {
  BINARY,
  binary,
  error,
  RATE_LIMITED,
  UNAUTHORIZED,
  UPLOAD_SECURITY,
  type Responses,
} from '../http/api-schemas.js';

export function processingRoutes(): RouteConfig[] {
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

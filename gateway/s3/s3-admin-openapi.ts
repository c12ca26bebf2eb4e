/**
 * The OpenAPI entries of the S3 admin routes (s3-admin.ts, which exports
 * the request schemas it validates with), and the JSON they answer with.
 * admin-openapi.ts adds them with the admin API's security and 401.
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { error, json } from '../http/api-schemas.js';
import {
  ACCESS_KEY_PARAMS,
  BUCKET_PARAMS,
  adminAccessKeyRequest,
  adminBucketDefaultsRequest,
} from './s3-admin.js';

type AdminRoute = Omit<RouteConfig, 'tags' | 'security'>;

const ACCESS_KEY = z
  .object({
    access_key_id: z.string(),
    name: z.string(),
    created_at: z.string(),
    revoked_at: z.string().nullable(),
  })
  .meta({ id: 'AccessKey', description: 'An S3 access key, never with its secret.' });

const NEW_ACCESS_KEY = z
  .object({
    access_key_id: z.string(),
    secret_access_key: z
      .string()
      .meta({ description: 'Shown this once: Trove keeps it only encrypted.' }),
    name: z.string(),
    created_at: z.string(),
    revoked_at: z.null(),
  })
  .meta({ id: 'NewAccessKey' });

const BUCKET_DEFAULTS = z
  .object({
    bucket: z.string(),
    max_downloads: z
      .number()
      .int()
      .nullable()
      .meta({ description: 'null: the gateway’s default.' }),
    ttl: z.number().int().nullable().meta({ description: 'Seconds; null: the gateway’s default.' }),
  })
  .meta({ id: 'BucketDefaults' });

export function s3AdminApiEntries(): AdminRoute[] {
  const body = (schema: z.ZodType, example: object) => ({
    body: { content: { 'application/json': { schema, example } } },
  });
  const invalid = error('INVALID_PARAMETER, INVALID_JSON, INVALID_OPTION');
  const noBucket = error('NO_SUCH_BUCKET');
  return [
    {
      method: 'post',
      path: '/admin/s3/keys',
      summary: 'Make an S3 access key (its secret is shown once)',
      request: body(adminAccessKeyRequest, { name: 'backup job' }),
      responses: { 201: json(NEW_ACCESS_KEY, 'The key, with its secret.'), 400: invalid },
    },
    {
      method: 'get',
      path: '/admin/s3/keys',
      summary: 'List the S3 access keys, revoked ones too, without secrets',
      responses: { 200: json(z.object({ keys: z.array(ACCESS_KEY) }), 'The keys, oldest first.') },
    },
    {
      method: 'delete',
      path: '/admin/s3/keys/{access_key_id}',
      summary: 'Revoke an S3 access key',
      description:
        'Requests signed with it are refused at once on this gateway, within 10 seconds on the others.',
      request: { params: ACCESS_KEY_PARAMS },
      responses: { 204: { description: 'Revoked.' }, 404: error('ACCESS_KEY_NOT_FOUND') },
    },
    {
      method: 'get',
      path: '/admin/s3/buckets/{bucket}/defaults',
      summary: "A bucket's default download limit and lifetime",
      request: { params: BUCKET_PARAMS },
      responses: { 200: json(BUCKET_DEFAULTS, 'The defaults.'), 404: noBucket },
    },
    {
      method: 'put',
      path: '/admin/s3/buckets/{bucket}/defaults',
      summary: "Set a bucket's default download limit and lifetime",
      description:
        'What its objects get when PutObject sends no x-amz-meta-max-downloads or x-amz-meta-ttl. Replaces both: an option left out goes back to the gateway’s default.',
      request: {
        params: BUCKET_PARAMS,
        ...body(adminBucketDefaultsRequest, { max_downloads: 10, ttl: '7d' }),
      },
      responses: { 200: json(BUCKET_DEFAULTS, 'The defaults now.'), 400: invalid, 404: noBucket },
    },
  ];
}

/**
 * The S3 part of the admin API (mounted by gateway/http/admin.ts under
 * /admin/s3, behind its token check): access keys, made with their secret
 * shown once, listed without it, revoked; and a bucket's defaults, the
 * `max_downloads` and `ttl` its objects get when PutObject names none,
 * validated exactly as an upload's options are.
 */
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { NotFoundError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import type { S3Bucket } from '../../shared/s3-metadata.js';
import { isValidBucketName } from '../../shared/s3-names.js';
import { jsonBody } from '../http/json-body.js';
import { parseOption, type OptionName, type UploadLimits } from '../upload/upload-options.js';
import { ACCESS_KEY_ID, type AccessKeyInfo, type AccessKeys } from './access-keys.js';

export interface S3AdminDeps {
  accessKeys: AccessKeys;
  store: Pick<MetadataStore, 's3'>;
  limits: UploadLimits;
  log: Logger;
}

/** Body of `POST /admin/s3/keys` (empty or `{}`: no name). */
export const adminAccessKeyRequest = z
  .object({
    name: z.string().max(100).optional().meta({
      description: 'A label for people: who or what uses the key.',
      example: 'backup job',
    }),
  })
  .strict()
  .meta({ id: 'AdminAccessKeyRequest' });

/** A number, or the text an upload option takes (`"5"`, `"2h"`). */
const optionValue = z.union([z.number(), z.string()]);

/** Body of `PUT /admin/s3/buckets/:bucket/defaults`: what is left out goes back to the gateway's default. */
export const adminBucketDefaultsRequest = z
  .object({
    max_downloads: optionValue.optional().meta({
      description:
        'Downloads an object’s link allows when PutObject sends no x-amz-meta-max-downloads; 0 = unlimited. Validated as the upload option.',
      example: 10,
    }),
    ttl: optionValue.optional().meta({
      description:
        'Lifetime of an object when PutObject sends no x-amz-meta-ttl: seconds, or with a unit (30m, 2h, 7d). Validated as the upload option.',
      example: '7d',
    }),
  })
  .strict()
  .meta({ id: 'AdminBucketDefaultsRequest' });

export const ACCESS_KEY_PARAMS = z.object({
  access_key_id: z
    .string()
    .meta({ description: 'An access key id (TRV…).', example: 'TRVEXAMPLE0000000000' }),
});

export const BUCKET_PARAMS = z.object({
  bucket: z.string().meta({ description: 'A bucket name.', example: 'photos' }),
});

type Env = { Bindings: HttpBindings };

/** The routes, relative to /admin/s3. */
export function s3AdminRoutes(deps: S3AdminDeps): Hono<Env> {
  const s3 = new Hono<Env>();
  s3.post('/keys', async (c) => {
    const req = await jsonBody(c, adminAccessKeyRequest);
    const key = await deps.accessKeys.create(req.name ?? '');
    // The id only: the secret is in the answer and nowhere else.
    deps.log.info({ accessKeyId: key.id, name: key.name }, 'admin: S3 access key created');
    return c.json({ ...accessKeyJson(key), secret_access_key: key.secret }, 201);
  });
  s3.get('/keys', async (c) => c.json({ keys: (await deps.accessKeys.list()).map(accessKeyJson) }));
  s3.delete('/keys/:access_key_id', async (c) => {
    const id = c.req.param('access_key_id');
    if (!ACCESS_KEY_ID.test(id) || !(await deps.accessKeys.revoke(id)))
      throw new NotFoundError(`no active access key ${id.slice(0, 40)}`, 'ACCESS_KEY_NOT_FOUND');
    deps.log.info({ accessKeyId: id }, 'admin: S3 access key revoked');
    return c.body(null, 204);
  });
  s3.get('/buckets/:bucket/defaults', async (c) =>
    c.json(bucketDefaultsJson(await findBucket(deps, c))),
  );
  s3.put('/buckets/:bucket/defaults', async (c) => {
    const bucket = await findBucket(deps, c);
    const req = await jsonBody(c, adminBucketDefaultsRequest);
    const defaults = {
      maxDownloads: option('max_downloads', req.max_downloads, deps.limits),
      ttlSeconds: option('ttl', req.ttl, deps.limits),
    };
    // The bucket may have been deleted since it was found.
    if (!(await deps.store.s3.setBucketDefaults(bucket.name, defaults)))
      throw noSuchBucket(bucket.name);
    return c.json(
      bucketDefaultsJson({
        ...bucket,
        defaultMaxDownloads: defaults.maxDownloads,
        defaultTtlSeconds: defaults.ttlSeconds,
      }),
    );
  });
  return s3;
}

function accessKeyJson(k: AccessKeyInfo) {
  return {
    access_key_id: k.id,
    name: k.name,
    created_at: new Date(k.createdAt).toISOString(),
    revoked_at: k.revokedAt === null ? null : new Date(k.revokedAt).toISOString(),
  };
}

function bucketDefaultsJson(b: S3Bucket) {
  return { bucket: b.name, max_downloads: b.defaultMaxDownloads, ttl: b.defaultTtlSeconds };
}

function noSuchBucket(name: string): NotFoundError {
  return new NotFoundError(`no bucket ${JSON.stringify(name.slice(0, 63))}`, 'NO_SUCH_BUCKET');
}

/** The bucket named in the path; a name S3 would refuse is a 404, as a malformed file id is. */
async function findBucket(deps: S3AdminDeps, c: Context): Promise<S3Bucket> {
  const name = c.req.param('bucket') ?? '';
  const bucket = isValidBucketName(name) ? await deps.store.s3.getBucket(name) : undefined;
  if (!bucket) throw noSuchBucket(name);
  return bucket;
}

/** An upload option's value from JSON, through the upload's own parser (same limits, same 400). */
function option(name: OptionName, value: number | string | undefined, limits: UploadLimits) {
  return value === undefined ? null : parseOption(name, String(value), limits);
}

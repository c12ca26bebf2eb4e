/**
 * The native API's per-client rate limits (gateway/http/rate-limit.ts) on
 * the S3 port: an operation that stores bytes counts as an upload, a read of
 * an object's bytes as a download attempt, as POST /upload and
 * GET /download/:id do. Everything else (listings, heads, deletes, bucket
 * calls) has no RateLimits category, so it is not limited, as the native
 * API's other routes are not. A refusal is thrown as RateLimits throws it
 * (429) and answered by s3-error-response.ts as S3's 503 SlowDown with its
 * Retry-After, which SDKs back off on.
 *
 * A NoSuchKey is no miss: requests are signed, so nobody scans share ids here.
 */
import type { Context } from 'hono';
import type { LimitCategory, RateLimits } from '../http/rate-limit.js';
import type { S3Operation } from './s3-request.js';

const CATEGORY: Partial<Record<S3Operation, LimitCategory>> = {
  PutObject: 'uploads',
  CopyObject: 'uploads',
  UploadPart: 'uploads',
  UploadPartCopy: 'uploads',
  CompleteMultipartUpload: 'uploads',
  GetObject: 'downloads',
};

/** The RateLimits category an operation counts in; undefined when it is not limited. */
export function limitCategory(operation: S3Operation): LimitCategory | undefined {
  return CATEGORY[operation];
}

/**
 * Holds a routed request to its operation's limit, before its signature is
 * checked (as the native API checks limits before the upload token): a
 * client sending bad signatures is held to them too. Throws
 * TooManyRequestsError when the client is over.
 */
export async function admit(
  limits: Pick<RateLimits, 'admit'>,
  c: Context,
  operation: S3Operation,
): Promise<void> {
  const category = limitCategory(operation);
  if (category) await limits.admit(c, category);
}

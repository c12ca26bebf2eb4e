/**
 * The S3-compatible API (docs/s3.md), served on its own port (S3_PORT) by
 * the gateway process: every request is routed from its raw path and query
 * (parseS3Request), its SigV4 signature verified (s3-auth.ts), then handed
 * to its operation. Errors answer as S3's XML (s3-error-response.ts).
 * Operations this slice does not serve answer 501 NotImplemented.
 */
import type { HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import { requestLog, type RequestLogOptions } from '../../shared/request-log.js';
import { RateLimits } from '../http/rate-limit.js';
import { authenticate } from './s3-auth.js';
import {
  createBucket,
  deleteBucket,
  getBucketLocation,
  headBucket,
  listBuckets,
} from './s3-buckets.js';
import { operationOf, routeOf, type ObjectCall, type S3Ctx, type S3Deps } from './s3-context.js';
import { copyObject } from './s3-copy.js';
import { deleteObject, deleteObjects } from './s3-delete.js';
import { s3ErrorHandler } from './s3-error-response.js';
import { S3Error } from './s3-errors.js';
import { getObject } from './s3-get.js';
import { listObjects, listObjectsV2Op } from './s3-list.js';
import { abortMultipartUpload, createMultipartUpload, uploadPart } from './s3-multipart.js';
import { completeMultipartUpload } from './s3-multipart-complete.js';
import { listMultipartUploads, listParts } from './s3-multipart-list.js';
import { uploadPartCopy } from './s3-part-copy.js';
import { putObject } from './s3-put.js';
import { admit } from './s3-limits.js';

type Env = { Bindings: HttpBindings };

export function createS3App(deps: S3Deps): Hono<Env> {
  const app = new Hono<Env>();
  app.onError(s3ErrorHandler(deps.log));
  const limits = rateLimitsOf(deps);
  // First: every log line carries the request id it gives, which S3 clients
  // report as x-amz-request-id, so a client's report finds the log lines.
  app.use('*', requestLog(deps.log, { idHeaders: ['x-amz-request-id'], onEnd: counter(deps) }));
  app.all('*', (c) => dispatch(deps, limits, c));
  return app;
}

/**
 * Counts each request in the S3 metrics (GET /metrics on the main port)
 * when its log line is written: one end-of-response listener, not two.
 */
function counter(deps: S3Deps): RequestLogOptions['onEnd'] {
  const metrics = deps.metrics?.s3;
  if (!metrics) return undefined;
  return (c, status) =>
    metrics.record(operationOf(c as S3Ctx, deps.s3.s3Domain), status, c.env.incoming.socket);
}

/** The native API's limits, counted in the same Redis keys: a client has one budget on both ports. */
function rateLimitsOf(deps: S3Deps): RateLimits {
  return new RateLimits({
    redis: deps.redis,
    log: deps.log,
    clusterName: deps.clusterName,
    trustProxy: deps.urls.trustProxy,
    config: deps.rateLimits,
  });
}

/** Routes the request, holds it to the native API's rate limits, verifies its signature, then performs it. */
async function dispatch(deps: S3Deps, limits: RateLimits, c: S3Ctx) {
  const request = routeOf(c, deps.s3.s3Domain);
  await admit(limits, c, request.operation);
  const auth = await authenticate(
    { accessKeys: deps.accessKeys, region: deps.s3.s3Region },
    c.env.incoming,
  );
  // One object for every kind of call: the bucket and key are '' where the operation names none.
  return perform(deps, { c, request, auth, bucket: request.bucket ?? '', key: request.key ?? '' });
}

function perform(deps: S3Deps, call: ObjectCall) {
  const { operation } = call.request;
  switch (operation) {
    case 'ListBuckets':
      return listBuckets(deps, call);
    case 'CreateBucket':
      return createBucket(deps, call);
    case 'HeadBucket':
      return headBucket(deps, call);
    case 'DeleteBucket':
      return deleteBucket(deps, call);
    case 'GetBucketLocation':
      return getBucketLocation(deps, call);
    case 'ListObjects':
      return listObjects(deps, call);
    case 'ListObjectsV2':
      return listObjectsV2Op(deps, call);
    case 'DeleteObjects':
      return deleteObjects(deps, call);
    case 'ListMultipartUploads':
      return listMultipartUploads(deps, call);
    case 'PutObject':
      return putObject(deps, call);
    case 'CopyObject':
      return copyObject(deps, call);
    case 'GetObject':
      return getObject(deps, call, false);
    case 'HeadObject':
      return getObject(deps, call, true);
    case 'DeleteObject':
      return deleteObject(deps, call);
    case 'CreateMultipartUpload':
      return createMultipartUpload(deps, call);
    case 'UploadPart':
      return uploadPart(deps, call);
    case 'UploadPartCopy':
      return uploadPartCopy(deps, call);
    case 'CompleteMultipartUpload':
      return completeMultipartUpload(deps, call);
    case 'AbortMultipartUpload':
      return abortMultipartUpload(deps, call);
    case 'ListParts':
      return listParts(deps, call);
    default:
      throw new S3Error(
        'NotImplemented',
        operation === 'NotImplemented'
          ? 'A header or query you provided implies functionality that is not implemented'
          : `${operation} is not implemented by this server yet`,
      );
  }
}

/**
 * The S3-compatible API (docs/s3.md), served on its own port (S3_PORT) by
 * the gateway process: every request is routed from its raw path and query
 * (parseS3Request), its SigV4 signature verified (s3-auth.ts), then handed
 * to its operation. Errors answer as S3's XML (s3-error-response.ts).
 * Operations this slice does not serve answer 501 NotImplemented.
 */
import type { HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import { requestLog } from '../../shared/request-log.js';
import { RateLimits } from '../http/rate-limit.js';
import { authenticate } from './s3-auth.js';
import {
  createBucket,
  deleteBucket,
  getBucketLocation,
  headBucket,
  listBuckets,
} from './s3-buckets.js';
import {
  operationOf,
  routeOf,
  type BucketCall,
  type ObjectCall,
  type S3Call,
  type S3Ctx,
  type S3Deps,
} from './s3-context.js';
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
import { s3RateLimits } from './s3-limits.js';

type Env = { Bindings: HttpBindings };

export function createS3App(deps: S3Deps): Hono<Env> {
  const app = new Hono<Env>();
  app.onError(s3ErrorHandler(deps.log));
  // First: every log line carries the request id it gives, which S3 clients
  // report as x-amz-request-id, so a client's report finds the log lines.
  app.use('*', requestLog(deps.log, { idHeaders: ['x-amz-request-id'] }));
  // Counted (GET /metrics on the main port) and held to the native API's rate limits.
  const operation = (c: S3Ctx) => operationOf(c, deps.s3.s3Domain);
  if (deps.metrics) app.use('*', deps.metrics.s3.middleware(operation));
  app.use('*', s3RateLimits(rateLimitsOf(deps), operation));
  app.all('*', (c) => dispatch(deps, c));
  return app;
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

async function dispatch(deps: S3Deps, c: S3Ctx) {
  const request = routeOf(c, deps.s3.s3Domain);
  const auth = await authenticate(
    { accessKeys: deps.accessKeys, region: deps.s3.s3Region },
    c.env.incoming,
  );
  return perform(deps, { c, request, auth });
}

function perform(deps: S3Deps, call: S3Call) {
  const { operation } = call.request;
  if (operation === 'ListBuckets') return listBuckets(deps, call);
  const bucketCall: BucketCall = { ...call, bucket: call.request.bucket ?? '' };
  switch (operation) {
    case 'CreateBucket':
      return createBucket(deps, bucketCall);
    case 'HeadBucket':
      return headBucket(deps, bucketCall);
    case 'DeleteBucket':
      return deleteBucket(deps, bucketCall);
    case 'GetBucketLocation':
      return getBucketLocation(deps, bucketCall);
    case 'ListObjects':
      return listObjects(deps, bucketCall);
    case 'ListObjectsV2':
      return listObjectsV2Op(deps, bucketCall);
    case 'DeleteObjects':
      return deleteObjects(deps, bucketCall);
    case 'ListMultipartUploads':
      return listMultipartUploads(deps, bucketCall);
  }
  const objectCall: ObjectCall = { ...bucketCall, key: call.request.key ?? '' };
  switch (operation) {
    case 'PutObject':
      return putObject(deps, objectCall);
    case 'CopyObject':
      return copyObject(deps, objectCall);
    case 'GetObject':
      return getObject(deps, objectCall, false);
    case 'HeadObject':
      return getObject(deps, objectCall, true);
    case 'DeleteObject':
      return deleteObject(deps, objectCall);
    case 'CreateMultipartUpload':
      return createMultipartUpload(deps, objectCall);
    case 'UploadPart':
      return uploadPart(deps, objectCall);
    case 'UploadPartCopy':
      return uploadPartCopy(deps, objectCall);
    case 'CompleteMultipartUpload':
      return completeMultipartUpload(deps, objectCall);
    case 'AbortMultipartUpload':
      return abortMultipartUpload(deps, objectCall);
    case 'ListParts':
      return listParts(deps, objectCall);
    default:
      throw new S3Error(
        'NotImplemented',
        operation === 'NotImplemented'
          ? 'A header or query you provided implies functionality that is not implemented'
          : `${operation} is not implemented by this server yet`,
      );
  }
}

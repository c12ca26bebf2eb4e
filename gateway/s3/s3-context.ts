/**
 * What every S3 operation handler is given: the gateway's parts, the request
 * as routed by parseS3Request, and who signed it.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import type { GatewayDeps } from '../http/app.js';
import type { S3Request } from './s3-request.js';
import type { SigV4Auth } from './sigv4.js';

/** The S3 API runs on the gateway's own parts (store, replicator, counters) and configuration. */
export type S3Deps = GatewayDeps;

export type S3Ctx = Context<{ Bindings: HttpBindings }>;

/** One authenticated S3 request. */
export interface S3Call {
  c: S3Ctx;
  request: S3Request;
  auth: SigV4Auth;
}

/** A routed request that names a bucket (every operation but ListBuckets). */
export interface BucketCall extends S3Call {
  bucket: string;
}

/** A routed request that names an object. */
export interface ObjectCall extends BucketCall {
  key: string;
}

/** The first value of a request header (node:http joins most repeats, keeps some as arrays). */
export function header(c: S3Ctx, name: string): string | undefined {
  const value = c.env.incoming.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

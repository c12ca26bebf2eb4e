/**
 * What every S3 operation handler is given: the gateway's parts, the request
 * as routed by parseS3Request, and who signed it.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import type { GatewayDeps } from '../http/app.js';
import { parseS3Request, splitTarget, type S3Operation, type S3Request } from './s3-request.js';
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

/** Requests already routed: the metrics and rate limits read the operation before dispatch routes it. */
const routed = new WeakMap<S3Ctx, S3Request>();

/**
 * The request as parseS3Request routes it, from the raw request target (a
 * URL parser would resolve `.`/`..` segments that are part of keys); throws
 * the S3Error of a request that cannot be routed.
 */
export function routeOf(c: S3Ctx, domain: string | undefined): S3Request {
  let request = routed.get(c);
  if (request) return request;
  const incoming = c.env.incoming;
  request = parseS3Request(
    {
      method: incoming.method ?? 'GET',
      host: header(c, 'host'),
      ...splitTarget(incoming.url ?? '/'),
      copySource: header(c, 'x-amz-copy-source'),
    },
    { domain },
  );
  routed.set(c, request);
  return request;
}

/** The request's operation; undefined when it cannot be routed (dispatch answers its error). */
export function operationOf(c: S3Ctx, domain: string | undefined): S3Operation | undefined {
  try {
    return routeOf(c, domain).operation;
  } catch {
    return undefined;
  }
}

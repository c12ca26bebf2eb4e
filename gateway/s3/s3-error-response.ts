/**
 * The S3 API's one `onError`: every failure answers as S3 would, an
 * `<Error>` document with S3's code, so SDKs branch on it as they do
 * against S3. Trove's own typed errors (from ingest, the replicas, the
 * store) are mapped onto the nearest S3 code here, and only here.
 */
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  TooManyRequestsError,
  TroveError,
  isDatabaseBusy,
  isDisconnect,
} from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { currentRequestId } from '../../shared/request-context.js';
import { drainUnread } from '../http/unread-body.js';
import { S3Error, type S3ErrorCode } from './s3-errors.js';
import { errorXml } from './s3-xml.js';

/** Seconds a client is told to wait after a 503: a node health probe period and a little more. */
const RETRY_AFTER_SECONDS = 2;

/** The S3 code a Trove error is answered with, by its HTTP status. */
const BY_STATUS: Readonly<Record<number, S3ErrorCode>> = {
  400: 'InvalidRequest',
  404: 'NoSuchKey',
  408: 'RequestTimeout',
  410: 'NoSuchKey',
  413: 'EntityTooLarge',
  // S3 has no code for a refused content type: Trove's ALLOWED_TYPES refusal is an InvalidRequest.
  415: 'InvalidRequest',
  416: 'InvalidRange',
  422: 'BadDigest',
  429: 'SlowDown',
  503: 'ServiceUnavailable',
  507: 'ServiceUnavailable',
};

/** `err` as the S3Error to answer; undefined for a bug (logged, then answered 500 InternalError). */
export function asS3Error(err: unknown): S3Error | undefined {
  if (err instanceof S3Error) return err;
  if (isDisconnect(err) || isDatabaseBusy(err))
    return new S3Error(
      'ServiceUnavailable',
      'A dependency is busy or unreachable; try again shortly',
    );
  if (err instanceof TroveError) {
    const code = BY_STATUS[err.status];
    return code === undefined ? undefined : new S3Error(code, err.message);
  }
  return undefined;
}

/** Hono `onError` of the S3 app. */
export function s3ErrorHandler(log: Logger) {
  return async (err: Error, c: Context) => {
    const { incoming, outgoing } = (c.env as Partial<HttpBindings> | undefined) ?? {};
    if (outgoing?.headersSent) {
      // The body is under way: cutting it short of its Content-Length is the only signal left.
      log.warn({ err: err.message, path: c.req.path }, 'S3: error after the response started');
      outgoing.destroy();
      return RESPONSE_ALREADY_SENT;
    }
    if (isDisconnect(err) && clientGone(c)) return c.body(null, 499 as ContentfulStatusCode);
    let s3 = asS3Error(err);
    if (s3 === undefined) {
      log.error({ err, method: c.req.method, path: c.req.path }, 'S3: unhandled error');
      s3 = new S3Error('InternalError', 'We encountered an internal error. Please try again.');
    } else if (s3.status >= 500) {
      log.warn({ code: s3.code, err: err.message }, 'S3 request failed');
    }
    if (s3.status === 503) {
      const wait =
        err instanceof TooManyRequestsError ? err.retryAfterSeconds : RETRY_AFTER_SECONDS;
      c.header('retry-after', String(wait));
    }
    // A client still sending its body must be able to finish, or it never reads this answer.
    if (incoming) await drainUnread(incoming);
    const body = errorXml({
      code: s3.code,
      message: s3.message,
      details: s3.details,
      resource: c.req.path,
      requestId: currentRequestId(),
    });
    return c.body(body, s3.status as ContentfulStatusCode, { 'content-type': 'application/xml' });
  };
}

function clientGone(c: Context): boolean {
  const env = c.env as Partial<HttpBindings> | undefined;
  return env?.outgoing?.destroyed === true || env?.incoming?.socket?.destroyed === true;
}

/**
 * GetObject and HeadObject: the object's bytes from the gateway's blob cache
 * or its file's replicas, through the same read path as GET /download
 * (openRead). Who asks decides whether it counts:
 *
 * - the bucket's owner, header-signed, reads their own object: no download
 *   is taken, and a link whose downloads are used up does not stop it;
 * - a presigned URL is a share the owner handed out: its GET counts one
 *   download of the object's file exactly as GET /download does (given back
 *   if no byte is sent; a resume of a counted read by a grant holder takes
 *   none), and a used-up file answers 403 AccessDenied, as S3 answers a
 *   link that no longer works. Its HEAD counts nothing, as a native HEAD.
 *
 * An object whose file expired or was deleted is 404 NoSuchKey to both.
 */
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ByteRange } from '../../shared/range.js';
import { contentRange, ifRangeHolds, parseRange } from '../../shared/range.js';
import type { FileRecord } from '../../shared/metadata-store.js';
import type { S3Object } from '../../shared/s3-metadata.js';
import { openRead, sendOpened } from '../download/download.js';
import { fileStatus } from '../files/file-rules.js';
import type { ServedBlob } from '../files/variants.js';
import { TroveError } from '../../shared/errors.js';
import { evaluateConditions, type Conditions } from './conditions.js';
import { owned } from './s3-buckets.js';
import { header, type ObjectCall, type S3Ctx, type S3Deps } from './s3-context.js';
import { S3Error } from './s3-errors.js';

export async function getObject(deps: S3Deps, call: ObjectCall, headOnly: boolean) {
  const { c } = call;
  // The bucket's owner and the object in one read: this runs on every read of an object.
  const found = await deps.store.s3.findObject(call.bucket, call.key, Date.now());
  owned(found?.bucket, call);
  if (call.request.partNumber !== undefined)
    throw new S3Error(
      'NotImplemented',
      'GetObject and HeadObject by partNumber are not supported yet',
    );
  if (!found?.object || !isLive(found.file)) throw noSuchKey(call.key);
  const { object, file } = found;
  const shared = call.auth.presigned;
  const headers = objectHeaders(object);

  const outcome = evaluateConditions(conditionsOf(c), {
    etag: object.etag,
    lastModified: object.lastModified,
  });
  if (outcome === 'not-modified') return c.body(null, 304, headers);
  if (outcome === 'precondition-failed')
    throw new S3Error(
      'PreconditionFailed',
      'At least one of the pre-conditions you specified did not hold',
      {
        Condition: 'If-Match',
      },
    );

  const range = ifRangeHolds(header(c, 'if-range'), object.etag, headers['last-modified'])
    ? rangeOf(c, object.size)
    : undefined;
  headers['content-length'] = String(range ? range.end - range.start + 1 : object.size);
  if (range) headers['content-range'] = contentRange(range, object.size);
  const status = range ? 206 : 200;
  if (headOnly) {
    // As a native HEAD: it counts nothing, but says the link is used up.
    if (shared && fileStatus(file) === 'exhausted') throw usedUp(call.key);
    return c.body(null, status, headers);
  }

  const blob = servedBlob(file, object);
  const opened = await openRead(deps, c, file, blob, {
    range,
    counted: shared,
    headers,
    // The grant cookie's path is /download/<id>: the S3 port never sees it back. The client's address grant serves.
    cookie: false,
  }).catch((err: unknown) => {
    if (shared) deps.metrics?.downloadRefused(err);
    throw err instanceof TroveError && err.code === 'DOWNLOAD_LIMIT_REACHED'
      ? usedUp(call.key)
      : err;
  });
  if (opened) sendOpened(deps, c, blob, opened, { range, statusCode: status, headers });
  return RESPONSE_ALREADY_SENT;
}

/** The object at `bucket`/`key` and its file, while both live; else 404 NoSuchKey. */
export async function liveObject(
  deps: S3Deps,
  bucket: string,
  key: string,
): Promise<{ object: S3Object; file: FileRecord }> {
  return withLiveFile(deps, await deps.store.s3.getObject(bucket, key, Date.now()), key);
}

/** `object` (as read, if visible) and its file, while the file lives; else 404 NoSuchKey. */
async function withLiveFile(
  deps: S3Deps,
  object: S3Object | undefined,
  key: string,
): Promise<{ object: S3Object; file: FileRecord }> {
  const file = object && (await deps.store.getFile(object.fileId));
  // The file may have expired or been deleted since the object row was read.
  if (!object || !file || !isLive(file)) throw noSuchKey(key);
  return { object, file };
}

/** Neither deleted nor expired: a used-up file still serves its owner. */
function isLive(file: FileRecord): boolean {
  const status = fileStatus(file);
  return status !== 'deleted' && status !== 'expired';
}

/** What the read path serves of an object: its file's blob, with the object's type. */
export function servedBlob(file: FileRecord, object: S3Object): ServedBlob {
  return {
    key: file.id,
    size: file.size,
    sha256: file.sha256,
    contentType: object.contentType,
    name: file.name,
  };
}

/** A presigned GET of an object whose share link has no downloads left. */
function usedUp(key: string): S3Error {
  return new S3Error(
    'AccessDenied',
    "Access Denied: this object's share link has no downloads left",
    { Key: key },
  );
}

export function noSuchKey(key: string): S3Error {
  return new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
}

/** The headers S3 answers an object's GET and HEAD with. */
function objectHeaders(object: S3Object): Record<string, string> {
  const headers: Record<string, string> = {
    etag: object.etag,
    'last-modified': new Date(object.lastModified).toUTCString(),
    'content-type': object.contentType,
    'accept-ranges': 'bytes',
    'x-trove-file-id': object.fileId,
  };
  for (const [name, value] of Object.entries(object.userMetadata))
    headers[`x-amz-meta-${name}`] = value;
  return headers;
}

/**
 * The conditions a request sends: If-Match, If-None-Match, If-Modified-Since,
 * If-Unmodified-Since, each under `prefix` (CopyObject's are
 * `x-amz-copy-source-if-*`).
 */
export function conditionsOf(c: S3Ctx, prefix = ''): Conditions {
  const conditions: Conditions = {};
  const ifMatch = header(c, `${prefix}if-match`);
  const ifNoneMatch = header(c, `${prefix}if-none-match`);
  const ifModifiedSince = header(c, `${prefix}if-modified-since`);
  const ifUnmodifiedSince = header(c, `${prefix}if-unmodified-since`);
  if (ifMatch !== undefined) conditions.ifMatch = ifMatch;
  if (ifNoneMatch !== undefined) conditions.ifNoneMatch = ifNoneMatch;
  if (ifModifiedSince !== undefined) conditions.ifModifiedSince = ifModifiedSince;
  if (ifUnmodifiedSince !== undefined) conditions.ifUnmodifiedSince = ifUnmodifiedSince;
  return conditions;
}

/** The Range asked for; 416 InvalidRange when none of its bytes exist (a malformed Range is ignored, as S3 does). */
function rangeOf(c: S3Ctx, size: number): ByteRange | undefined {
  try {
    return parseRange(header(c, 'range'), size);
  } catch {
    throw new S3Error('InvalidRange', 'The requested range is not satisfiable', {
      RangeRequested: header(c, 'range') ?? '',
      ActualObjectSize: String(size),
    });
  }
}

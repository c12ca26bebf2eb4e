/**
 * GetObject and HeadObject by the bucket's owner (a header-signed request):
 * the object's bytes from the gateway's blob cache or its file's replicas,
 * through the same read path as GET /download. Such a read is the owner
 * reading their own object, not a use of the share link: it takes no
 * download, and a link whose downloads are used up does not stop it.
 */
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ByteRange } from '../../shared/range.js';
import { contentRange, parseRange } from '../../shared/range.js';
import type { S3Object } from '../../shared/s3-metadata.js';
import { blobRead } from '../download/replica-reader.js';
import { send, sendCached, unavailable } from '../download/download.js';
import type { ServedBlob } from '../files/variants.js';
import { disconnectSignal } from '../http/request-signal.js';
import { evaluateConditions } from './conditions.js';
import { ownedBucket } from './s3-buckets.js';
import { header, type ObjectCall, type S3Ctx, type S3Deps } from './s3-context.js';
import { S3Error } from './s3-errors.js';

export async function getObject(deps: S3Deps, call: ObjectCall, headOnly: boolean) {
  const { c } = call;
  await ownedBucket(deps, call);
  if (call.request.partNumber !== undefined)
    throw new S3Error(
      'NotImplemented',
      'GetObject and HeadObject by partNumber are not supported yet',
    );
  const object = await deps.store.s3.getObject(call.bucket, call.key, Date.now());
  const file = object && (await deps.store.getFile(object.fileId));
  if (!object || !file) throw noSuchKey(call.key);
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

  const range = rangeOf(c, object.size);
  headers['content-length'] = String(range ? range.end - range.start + 1 : object.size);
  if (range) headers['content-range'] = contentRange(range, object.size);
  const status = range ? 206 : 200;
  if (headOnly) return c.body(null, status, headers);

  const blob: ServedBlob = {
    key: file.id,
    size: file.size,
    sha256: file.sha256,
    contentType: object.contentType,
    name: file.name,
  };
  const cached = deps.blobCache.get(blob);
  if (cached) {
    const bytes = range ? cached.subarray(range.start, range.end + 1) : cached;
    sendCached(deps, c, blob.key, bytes, { statusCode: status, headers });
    return RESPONSE_ALREADY_SENT;
  }
  const signal = disconnectSignal(c.env.outgoing);
  const read = await (await blobRead(deps, file.id, blob)).open({ range, signal });
  if (!('stream' in read)) {
    if (signal.aborted) return RESPONSE_ALREADY_SENT;
    throw unavailable(c, read.busy, {});
  }
  send(deps, c, blob.key, read.stream, { statusCode: status, headers, signal });
  if (!range) deps.blobCache.fillFrom(blob, read.stream);
  return RESPONSE_ALREADY_SENT;
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

function conditionsOf(c: S3Ctx) {
  const conditions: Parameters<typeof evaluateConditions>[0] = {};
  const ifMatch = header(c, 'if-match');
  const ifNoneMatch = header(c, 'if-none-match');
  const ifModifiedSince = header(c, 'if-modified-since');
  const ifUnmodifiedSince = header(c, 'if-unmodified-since');
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

/**
 * CopyObject: `PUT /bucket/key` with `x-amz-copy-source: /srcbucket/srckey`.
 * The copy is a new Trove file, with its own id, share link and download
 * count (from the copy's metadata, else the destination bucket's defaults):
 * the source's bytes are read as the owner's GetObject reads them (counting
 * nothing of the source's link) and stored as PutObject stores a body
 * (storeObject). Both buckets must be the signer's.
 */
import { Readable } from 'node:stream';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { FileRecord } from '../../shared/metadata-store.js';
import type { ByteRange } from '../../shared/range.js';
import type { S3Object } from '../../shared/s3-metadata.js';
import { MAX_KEY_BYTES } from '../../shared/s3-names.js';
import { openRead } from '../download/download.js';
import { evaluateConditions, type Conditions } from './conditions.js';
import { Md5Stage } from './etag.js';
import { ownedBucket, XML } from './s3-buckets.js';
import { header, type ObjectCall, type S3Ctx, type S3Deps } from './s3-context.js';
import { S3Error } from './s3-errors.js';
import { conditionsOf, liveObject, servedBlob } from './s3-get.js';
import { objectOptions, storeObject, troveHeaders, userMetadataOf } from './s3-put.js';
import { copyObjectResultXml } from './s3-xml.js';

/** Where a copy comes from. */
export interface CopySource {
  bucket: string;
  key: string;
}

export type MetadataDirective = 'COPY' | 'REPLACE';

const COPY_CONDITION_PREFIX = 'x-amz-copy-source-';

export async function copyObject(deps: S3Deps, call: ObjectCall) {
  const { c } = call;
  const bucket = await ownedBucket(deps, call);
  const from = parseCopySource(header(c, 'x-amz-copy-source') ?? '');
  const directive = parseMetadataDirective(header(c, 'x-amz-metadata-directive'));
  if (from.bucket === call.bucket && from.key === call.key && directive === 'COPY')
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  const { object, file } = await findCopySource(deps, call, from);

  const userMetadata =
    directive === 'REPLACE' ? userMetadataOf(c.env.incoming.headers) : object.userMetadata;
  // Refused before any byte of the source is read.
  const options = objectOptions(userMetadata, bucket, deps.limits);
  const read = await readCopySource(deps, c, { object, file }, undefined);
  if (!read) return RESPONSE_ALREADY_SENT; // the client left
  const { bytes, md5 } = read;
  const stored = await storeObject(deps, call, {
    options,
    source: md5,
    md5,
    userMetadata,
    declaredLength: file.size,
  }).finally(() => bytes.destroy()); // a refused copy stops reading the source
  return c.body(copyObjectResultXml(stored.etag, new Date(stored.file.createdAt)), 200, {
    ...XML,
    ...troveHeaders(stored),
  });
}

/**
 * The live source object of a copy, once the signer is seen to own its
 * bucket and the `x-amz-copy-source-if-*` conditions hold.
 */
export async function findCopySource(
  deps: S3Deps,
  call: ObjectCall,
  from: CopySource,
): Promise<{ object: S3Object; file: FileRecord }> {
  await ownedBucket(deps, { ...call, bucket: from.bucket });
  const source = await liveObject(deps, from.bucket, from.key);
  checkCopyConditions(conditionsOf(call.c, COPY_CONDITION_PREFIX), source.object);
  return source;
}

/**
 * Opens the source's bytes (or `range` of them), passing through an MD5
 * stage: the copy's ETag. `bytes` is for the caller to destroy once done, so
 * a refused copy stops reading the source. Undefined: the client left.
 */
export async function readCopySource(
  deps: S3Deps,
  c: S3Ctx,
  source: { object: S3Object; file: FileRecord },
  range: ByteRange | undefined,
): Promise<{ bytes: Readable; md5: Md5Stage } | undefined> {
  // Not counted: the owner reading their own object, as their GetObject.
  const opened = await openRead(deps, c, source.file, servedBlob(source.file, source.object), {
    range,
    counted: false,
    headers: {},
    cookie: false,
  });
  if (!opened) return undefined;
  // The cache holds a blob whole: a range is cut from it here.
  const bytes =
    'cached' in opened
      ? Readable.from([range ? opened.cached.subarray(range.start, range.end + 1) : opened.cached])
      : opened.stream;
  const md5 = new Md5Stage();
  bytes.once('error', (err) => md5.destroy(err));
  bytes.pipe(md5);
  return { bytes, md5 };
}

/**
 * `x-amz-copy-source`: `[/]bucket/key`, URL-encoded, optionally
 * `?versionId=null` (Trove's buckets are unversioned: any other version is
 * refused).
 */
export function parseCopySource(value: string): CopySource {
  const at = value.indexOf('?');
  const path = at < 0 ? value : value.slice(0, at);
  if (at >= 0) {
    const versionId = new URLSearchParams(value.slice(at + 1)).get('versionId');
    if (versionId !== null && versionId !== 'null')
      throw new S3Error('InvalidArgument', 'Invalid version id specified', {
        ArgumentName: 'x-amz-copy-source',
        ArgumentValue: value.slice(0, 200),
      });
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.replace(/^\//, ''));
  } catch {
    throw badCopySource(value, 'Invalid copy source encoding');
  }
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1)
    throw badCopySource(
      value,
      'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
    );
  const key = decoded.slice(slash + 1);
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES)
    throw new S3Error('KeyTooLongError', 'Your key is too long');
  return { bucket: decoded.slice(0, slash), key };
}

function badCopySource(value: string, message: string): S3Error {
  return new S3Error('InvalidArgument', message, {
    ArgumentName: 'x-amz-copy-source',
    ArgumentValue: value.slice(0, 200),
  });
}

/** `x-amz-metadata-directive`: COPY (the default) keeps the source's metadata, REPLACE takes the request's. */
export function parseMetadataDirective(value: string | undefined): MetadataDirective {
  if (value === undefined || value === 'COPY') return 'COPY';
  if (value === 'REPLACE') return 'REPLACE';
  throw new S3Error('InvalidArgument', 'Unknown metadata directive.', {
    ArgumentName: 'x-amz-metadata-directive',
    ArgumentValue: value.slice(0, 40),
  });
}

/** The `x-amz-copy-source-if-*` conditions: any that does not hold is 412 PreconditionFailed (as S3: never 304). */
export function checkCopyConditions(
  conditions: Conditions,
  source: { etag: string; lastModified: number },
): void {
  const outcome = evaluateConditions(conditions, source);
  if (outcome === 'proceed') return;
  const failed =
    outcome === 'precondition-failed'
      ? conditions.ifMatch !== undefined
        ? 'If-Match'
        : 'If-Unmodified-Since'
      : conditions.ifNoneMatch !== undefined
        ? 'If-None-Match'
        : 'If-Modified-Since';
  throw new S3Error(
    'PreconditionFailed',
    'At least one of the pre-conditions you specified did not hold',
    { Condition: `x-amz-copy-source-${failed}` },
  );
}

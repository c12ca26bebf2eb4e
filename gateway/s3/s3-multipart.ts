/**
 * CreateMultipartUpload, UploadPart and AbortMultipartUpload. An upload is a
 * resumable upload (multipart-uploads.ts); each part is a blob of its own,
 * streamed down the chain of the file-to-be's nodes as a tus PATCH is
 * (part-stream.ts), so CompleteMultipartUpload composes it on each node
 * without moving bytes again (s3-multipart-complete.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { PayloadTooLargeError } from '../../shared/errors.js';
import { newFileId } from '../../shared/keys.js';
import type { ResumableUpload, UploadPart } from '../../shared/metadata-store.js';
import { partKey, removeParts } from '../../shared/resumable-parts.js';
import { ByteLimit, HashCounter } from '../../shared/streams.js';
import { cleanFileName } from '../http/http-names.js';
import { partDeps } from '../resumable/completion.js';
import { assertPartQuorum, discardPart, streamPart } from '../resumable/part-stream.js';
import { type Md5Stage, singlePartEtag } from './etag.js';
import { noSuchUpload, openUpload, uploadMetadata } from './multipart-uploads.js';
import { checkPayloadDigest, objectBody } from './s3-body.js';
import { ownedBucket, XML } from './s3-buckets.js';
import { header, type ObjectCall, type S3Deps } from './s3-context.js';
import {
  checkContentMd5,
  declaredLength,
  expectedMd5,
  objectOptions,
  userMetadataOf,
} from './s3-put.js';
import { initiateMultipartUploadXml } from './s3-xml.js';

/**
 * The share-link options and user metadata are read here, as PutObject
 * reads them, and checked at once: a bad value fails before any part is sent.
 */
export async function createMultipartUpload(deps: S3Deps, call: ObjectCall) {
  const { c } = call;
  const bucket = await ownedBucket(deps, call);
  const userMetadata = userMetadataOf(c.env.incoming.headers);
  const options = objectOptions(userMetadata, bucket, deps.limits);
  const id = randomBytes(16).toString('hex');
  const createdAt = Date.now();
  await deps.store.createResumable({
    id,
    fileId: newFileId(),
    name: cleanFileName(call.key),
    length: null,
    maxDownloads: options.maxDownloads,
    ttlSeconds: options.ttlSeconds,
    metadata: uploadMetadata(userMetadata, header(c, 'content-type')),
    client: `s3:${call.auth.accessKeyId}`,
    uploadLink: null,
    createdAt,
    expiresAt: createdAt + deps.resumable.resumableUploadExpirySeconds * 1000,
    s3: { bucket: call.bucket, key: call.key },
  });
  return c.body(initiateMultipartUploadXml(call.bucket, call.key, id), 200, XML);
}

export async function uploadPart(deps: S3Deps, call: ObjectCall) {
  const { c } = call;
  await ownedBucket(deps, call);
  const upload = await openUpload(deps, call);
  const contentMd5 = expectedMd5(header(c, 'content-md5'));
  const partNumber = call.request.partNumber!;
  const length = declaredLength(c.env.incoming.headers, call.auth.payloadHash);
  const room = await roomForPart(deps, upload, partNumber, length);
  checkRoom(deps, room, length);
  const { source, md5 } = objectBody(call);
  await storePart(deps, upload, partNumber, room, {
    source,
    md5,
    verify: (sha256) => {
      checkPayloadDigest(call.auth, sha256);
      checkContentMd5(contentMd5, md5.md5());
    },
  });
  return c.body(null, 200, { etag: singlePartEtag(md5.md5()) });
}

/** A part's bytes: the request's body (UploadPart) or a source object's (UploadPartCopy). */
export interface PartBytes {
  source: Readable;
  /** A stage of `source`: the part's ETag once it ended. */
  md5: Md5Stage;
  /** Checks of the bytes once all passed (their sha256 given); one that throws keeps no part. */
  verify?: (sha256: string) => void;
}

/**
 * The bytes part `partNumber` may hold: what MAX_UPLOAD_BYTES leaves of the
 * object after the upload's stored parts, the part it would replace (the
 * same number sent again) not counted. Parts being written meanwhile are
 * not counted either; Complete holds the object to the limit exactly. A
 * part of known `length` that fits without that credit reads no part rows
 * (an upload may have 10,000).
 */
export async function roomForPart(
  deps: S3Deps,
  upload: ResumableUpload,
  partNumber: number,
  length: number | undefined,
): Promise<number> {
  const room = deps.uploads.maxUploadBytes - upload.offset;
  if (length !== undefined && length <= room) return room;
  const replaced = (await deps.store.partsOf(upload.id))
    .filter((p) => p.stored && p.partNumber === partNumber)
    .reduce((sum, p) => sum + (p.size ?? 0), 0);
  return room + replaced;
}

/** A part of `length` bytes (if known) that would not fit in `room`: refused before any byte streams. */
export function checkRoom(deps: S3Deps, room: number, length: number | undefined) {
  if (length !== undefined && length > room)
    throw PayloadTooLargeError.forBytes(deps.uploads.maxUploadBytes);
}

/**
 * Streams `bytes` into part `partNumber` of `upload`, down the chain of the
 * file-to-be's nodes, cut off past `room` bytes (roomForPart); a part that
 * fails (or whose upload ended meanwhile) is discarded. Resolves once stored.
 */
export async function storePart(
  deps: S3Deps,
  upload: ResumableUpload,
  partNumber: number,
  room: number,
  bytes: PartBytes,
): Promise<void> {
  const { maxUploadBytes } = deps.uploads;
  const chain = deps.replicator.chainFor(upload.fileId);
  // S3 parts are known by number: it stands where a tus part's offset does.
  const key = partKey(upload.fileId, partNumber);
  await deps.store.beginPart({
    uploadId: upload.id,
    key,
    offset: 0,
    partNumber,
    nodes: chain.map((n) => n.id),
    createdAt: Date.now(),
  });
  const { source, md5 } = bytes;
  const hasher = new HashCounter();
  const limit = new ByteLimit(room, () => PayloadTooLargeError.forBytes(maxUploadBytes));
  let replaced: UploadPart[];
  try {
    const stored = await streamPart(deps, { key, chain, body: source, before: [limit], hasher });
    bytes.verify?.(hasher.digest());
    assertPartQuorum(deps, stored, chain);
    const result = await deps.store.s3.storeNumberedPart({
      uploadId: upload.id,
      key,
      partNumber,
      size: hasher.bytes,
      sha256: hasher.digest(),
      md5: md5.md5(),
      nodes: stored,
    });
    // Completed or aborted while this part streamed.
    if (!result.stored) throw noSuchUpload(upload.id);
    replaced = result.replaced;
  } catch (err) {
    await discardPart(deps, key);
    throw err;
  }
  // The part sent again wins; the bytes it replaces are garbage.
  if (replaced.length > 0) void removeLater(deps, upload, replaced);
}

/** Ends the upload (no part can be stored after) and removes its parts; a node away leaves them to the sweep. */
export async function abortMultipartUpload(deps: S3Deps, call: ObjectCall) {
  await ownedBucket(deps, call);
  const upload = await openUpload(deps, call);
  if (!(await deps.store.endResumable(upload.id, 'terminated'))) throw noSuchUpload(upload.id);
  await removeParts(partDeps(deps), upload);
  return call.c.body(null, 204);
}

async function removeLater(
  deps: S3Deps,
  upload: ResumableUpload,
  parts: UploadPart[],
): Promise<void> {
  try {
    await removeParts(partDeps(deps), upload, parts);
  } catch (err) {
    deps.log.warn({ upload: upload.id, err: (err as Error).message }, 'parts left to the sweep');
  }
}

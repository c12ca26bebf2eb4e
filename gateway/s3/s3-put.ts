/**
 * PutObject: the body becomes a Trove file through the same way in as
 * POST /upload (ingestFile, then commitIngested: size limit, type sniffing,
 * replication, share link, expiry and processing jobs), and the key is then
 * pointed at that file. A key written again points at the new file and the
 * old one is deleted as DELETE /files/:id deletes (tombstone now, blobs
 * after the worker's grace).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { BadRequestError } from '../../shared/errors.js';
import type { S3Bucket, S3Object } from '../../shared/s3-metadata.js';
import { deleteNow } from '../files/deletion.js';
import { cleanFileName } from '../http/http-names.js';
import { disconnectSignal } from '../http/request-signal.js';
import { discardUpload, ingestFile, type IngestedFile } from '../upload/ingest.js';
import { commitIngested, uploadAnswer } from '../upload/upload.js';
import {
  parseOption,
  type OptionName,
  type UploadLimits,
  type UploadOptions,
} from '../upload/upload-options.js';
import { checkPayloadDigest, objectBody } from './s3-body.js';
import { noSuchBucket, ownedBucket } from './s3-buckets.js';
import { header, type ObjectCall, type S3Ctx, type S3Deps } from './s3-context.js';
import { singlePartEtag, type Md5Stage } from './etag.js';
import { S3Error } from './s3-errors.js';

/** S3's limit on the user metadata of an object: names and values together, in bytes. */
const MAX_USER_METADATA_BYTES = 2048;
const META_PREFIX = 'x-amz-meta-';
/** The user metadata that set the file's share-link options, as POST /upload's max_downloads and ttl. */
const OPTION_METADATA: Record<OptionName, string> = { max_downloads: 'max-downloads', ttl: 'ttl' };

export async function putObject(deps: S3Deps, call: ObjectCall) {
  const { c } = call;
  const bucket = await ownedBucket(deps, call);
  const headers = c.env.incoming.headers;
  const userMetadata = userMetadataOf(headers);
  const options = objectOptions(userMetadata, bucket, deps.limits);
  const contentMd5 = expectedMd5(header(c, 'content-md5'));
  const { source, md5 } = objectBody(call);
  const stored = await storeObject(deps, call, {
    options,
    source,
    md5,
    userMetadata,
    declaredLength: declaredLength(headers, call.auth.payloadHash),
    check: (file) => {
      checkPayloadDigest(call.auth, file.sha256);
      checkContentMd5(contentMd5, md5.md5());
    },
  });
  return c.body(null, 200, { etag: stored.etag, ...troveHeaders(stored) });
}

/** An object stored by storeObject: its new file, and what the answer says of it. */
export interface StoredObject {
  file: IngestedFile;
  etag: string;
  /** The file's share page and download links. */
  answer: ReturnType<typeof uploadAnswer>;
}

/**
 * Stores `source` (through its `md5` stage) as a new Trove file and points
 * `call`'s key at it: ingestFile, `check` (a failure discards the file,
 * nothing is kept), commitIngested with the share-link `options`
 * (objectOptions), then the object row with `userMetadata`; the file
 * the key pointed at before is deleted. PutObject and CopyObject store
 * through here.
 */
export async function storeObject(
  deps: S3Deps,
  call: ObjectCall,
  o: {
    options: UploadOptions;
    source: Readable;
    md5: Md5Stage;
    userMetadata: Record<string, string>;
    declaredLength: number | undefined;
    check?: (file: IngestedFile) => void;
  },
): Promise<StoredObject> {
  const { c } = call;
  const { options } = o;
  const file = await ingestFile(deps, {
    source: o.source,
    name: cleanFileName(call.key),
    ...(o.declaredLength !== undefined && { declaredLength: o.declaredLength }),
    maxDownloads: options.maxDownloads,
    expiresAt: Date.now() + options.ttlSeconds * 1000,
    signal: disconnectSignal(c.env.outgoing, c.env.incoming),
  });
  if (o.check) await verifyOrDiscard(deps, file, () => o.check!(file));
  const [commit] = await commitIngested(deps, [file], options);
  const md5 = o.md5.md5();
  const etag = singlePartEtag(md5);
  await pointKeyAt(deps, call, file, { etag, userMetadata: o.userMetadata, md5 });
  return { file, etag, answer: uploadAnswer(file, commit!, shareBase(c, deps)) };
}

/**
 * Points the key at a committed file and tombstones the file it pointed at
 * before. A file no key could point at (the bucket went) is deleted at once.
 */
export async function pointKeyAt(
  deps: S3Deps,
  call: ObjectCall,
  file: { id: string; size: number; contentType: string; createdAt: number },
  object: Pick<S3Object, 'etag' | 'userMetadata' | 'md5'>,
): Promise<void> {
  const result = await deps.store.s3.putObject({
    ...object,
    bucket: call.bucket,
    key: call.key,
    fileId: file.id,
    size: file.size,
    contentType: file.contentType,
    lastModified: file.createdAt,
  });
  if (result.status !== 'stored') {
    // Committed, but no key points at it: it must not live on unreachable.
    await deleteNow(deps, file.id, 'S3 object that lost its bucket');
    if (result.status === 'no-bucket') throw noSuchBucket(call.bucket);
    throw new S3Error(
      'InternalError',
      'The object was removed while it was being stored; send it again.',
    );
  }
  if (result.previousFileId !== undefined)
    await deleteNow(deps, result.previousFileId, `S3 write over ${call.bucket}/${call.key}`);
}

/** The headers that name a stored object's Trove file and links (PutObject's, CopyObject's and CompleteMultipartUpload's answers). */
export function troveHeaders(stored: {
  file: { id: string };
  answer: { share_url: string; url: string };
}): Record<string, string> {
  return {
    'x-trove-file-id': stored.file.id,
    'x-trove-share-url': stored.answer.share_url,
    'x-trove-download-url': stored.answer.url,
  };
}

/** Runs `check` on an ingested, uncommitted file; a failed check discards it (nothing stored). */
async function verifyOrDiscard(deps: S3Deps, file: IngestedFile, check: () => void): Promise<void> {
  try {
    check();
  } catch (err) {
    await discardUpload(deps, file.id);
    throw err;
  }
}

/** The x-amz-meta-* headers, names without the prefix; 400 MetadataTooLarge past S3's 2 KB. */
export function userMetadataOf(headers: IncomingHttpHeaders): Record<string, string> {
  const metadata: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(META_PREFIX) || value === undefined) continue;
    const key = name.slice(META_PREFIX.length);
    metadata[key] = Array.isArray(value) ? value.join(',') : value;
    bytes += Buffer.byteLength(key) + Buffer.byteLength(metadata[key]);
  }
  if (bytes > MAX_USER_METADATA_BYTES)
    throw new S3Error(
      'MetadataTooLarge',
      `Your metadata headers exceed the maximum allowed metadata size of ${MAX_USER_METADATA_BYTES} bytes`,
    );
  return metadata;
}

/**
 * The share link's options: x-amz-meta-max-downloads / x-amz-meta-ttl,
 * validated as POST /upload validates max_downloads and ttl; else the
 * bucket's defaults; else the gateway's.
 */
export function objectOptions(
  metadata: Record<string, string>,
  bucket: Pick<S3Bucket, 'defaultMaxDownloads' | 'defaultTtlSeconds'>,
  limits: UploadLimits,
): UploadOptions {
  return {
    maxDownloads:
      option('max_downloads', metadata, limits) ??
      bucket.defaultMaxDownloads ??
      limits.defaultMaxDownloads,
    ttlSeconds:
      option('ttl', metadata, limits) ?? bucket.defaultTtlSeconds ?? limits.defaultTtlSeconds,
  };
}

function option(name: OptionName, metadata: Record<string, string>, limits: UploadLimits) {
  const headerName = META_PREFIX + OPTION_METADATA[name];
  const raw = metadata[OPTION_METADATA[name]];
  if (raw === undefined) return undefined;
  try {
    return parseOption(name, raw, limits);
  } catch (err) {
    if (!(err instanceof BadRequestError)) throw err;
    throw new S3Error('InvalidArgument', `${headerName}: ${err.message}`, {
      ArgumentName: headerName,
      ArgumentValue: raw.slice(0, 40),
    });
  }
}

/** The hex MD5 a Content-MD5 header (base64 of 16 bytes) announces; 400 InvalidDigest if it is not one. */
export function expectedMd5(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const bytes = /^[A-Za-z0-9+/]{22}==$/.test(value.trim())
    ? Buffer.from(value.trim(), 'base64')
    : undefined;
  if (bytes?.length !== 16)
    throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.');
  return bytes.toString('hex');
}

/** 400 BadDigest when a Content-MD5 was sent and the bytes received have another. */
export function checkContentMd5(expected: string | undefined, received: string): void {
  if (expected !== undefined && expected !== received)
    throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
}

/**
 * The object's length, when the client said: an aws-chunked body's
 * Content-Length counts its framing, so its object is
 * x-amz-decoded-content-length long.
 */
export function declaredLength(
  headers: IncomingHttpHeaders,
  payloadHash: string,
): number | undefined {
  const raw = payloadHash.startsWith('STREAMING-')
    ? headers['x-amz-decoded-content-length']
    : headers['content-length'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/**
 * Where share links point: PUBLIC_URL, else the host the S3 client used
 * with the gateway's own port (the S3 port serves no /download or /s).
 */
export function shareBase(c: S3Ctx, deps: Pick<S3Deps, 'urls' | 'server'>): string {
  if (deps.urls.publicUrl) return deps.urls.publicUrl;
  return `http://${new URL(c.req.url).hostname}:${deps.server.port}`;
}

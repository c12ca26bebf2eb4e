/**
 * ListParts and ListMultipartUploads: pages over the store's stored parts
 * of an upload (by number) and its S3 uploads still open (by key, then
 * creation).
 */
import type { MultipartUploadSummary } from '../../shared/s3-metadata.js';
import { parseEncodingType, parseMaxKeys } from './listing.js';
import { openUpload } from './multipart-uploads.js';
import { ownedBucket, ownerOf, XML } from './s3-buckets.js';
import type { BucketCall, ObjectCall, S3Deps } from './s3-context.js';
import { S3Error } from './s3-errors.js';
import { listMultipartUploadsXml, listPartsXml } from './s3-xml.js';

/** How many open uploads a page past a key-marker looks through (the store pages by prefix only). */
const UPLOAD_SCAN = 10_000;

export async function listParts(deps: S3Deps, call: ObjectCall) {
  await ownedBucket(deps, call);
  const upload = await openUpload(deps, call);
  const { query } = call.request;
  const maxParts = parseMaxKeys(query.get('max-parts'), 'max-parts');
  const marker = partNumberMarker(query.get('part-number-marker'));
  const after = (await deps.store.s3.listParts(upload.id)).filter((p) => p.partNumber! > marker);
  const page = after.slice(0, maxParts);
  const isTruncated = after.length > page.length;
  const xml = listPartsXml({
    bucket: call.bucket,
    key: call.key,
    uploadId: upload.id,
    owner: ownerOf(call.auth.accessKeyId),
    partNumberMarker: marker,
    nextPartNumberMarker: page.at(-1)?.partNumber ?? undefined,
    maxParts,
    isTruncated,
    parts: page.map((p) => ({
      partNumber: p.partNumber!,
      lastModified: new Date(p.createdAt),
      etag: p.md5!,
      size: p.size!,
    })),
  });
  return call.c.body(xml, 200, XML);
}

function partNumberMarker(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 0;
  if (!/^\d{1,9}$/.test(raw))
    throw new S3Error('InvalidArgument', 'Provided part-number-marker not an integer', {
      ArgumentName: 'part-number-marker',
      ArgumentValue: raw.slice(0, 40),
    });
  return Number(raw);
}

export async function listMultipartUploads(deps: S3Deps, call: BucketCall) {
  await ownedBucket(deps, call);
  const { query } = call.request;
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') || undefined;
  const maxUploads = parseMaxKeys(query.get('max-uploads'), 'max-uploads');
  const keyMarker = query.get('key-marker') ?? '';
  const uploadIdMarker = keyMarker === '' ? '' : (query.get('upload-id-marker') ?? '');
  const encodingType = parseEncodingType(query.get('encoding-type'));
  const open = await deps.store.s3.listMultipartUploads(call.bucket, {
    prefix,
    limit: keyMarker === '' && delimiter === undefined ? maxUploads + 1 : UPLOAD_SCAN,
  });
  const entries = grouped(afterMarkers(open, keyMarker, uploadIdMarker), prefix, delimiter);
  const page = entries.slice(0, maxUploads);
  const isTruncated = entries.length > page.length;
  const last = page.at(-1);
  const xml = listMultipartUploadsXml({
    bucket: call.bucket,
    owner: ownerOf(call.auth.accessKeyId),
    prefix,
    delimiter,
    keyMarker,
    uploadIdMarker,
    nextKeyMarker: isTruncated && last ? (last.upload?.key ?? last.prefix) : undefined,
    nextUploadIdMarker: isTruncated ? last?.upload?.uploadId : undefined,
    maxUploads,
    isTruncated,
    encodingType,
    uploads: page.flatMap(({ upload }) =>
      upload
        ? [{ key: upload.key, uploadId: upload.uploadId, initiated: new Date(upload.createdAt) }]
        : [],
    ),
    commonPrefixes: page.flatMap(({ prefix }) => (prefix === undefined ? [] : [prefix])),
  });
  return call.c.body(xml, 200, XML);
}

/**
 * The uploads after the markers: keys after key-marker, and with an
 * upload-id-marker, the uploads of key-marker that come after that one.
 */
export function afterMarkers(
  uploads: MultipartUploadSummary[],
  keyMarker: string,
  uploadIdMarker: string,
): MultipartUploadSummary[] {
  if (keyMarker === '') return uploads;
  const at = uploads.findIndex((u) => u.key === keyMarker && u.uploadId === uploadIdMarker);
  if (at >= 0) return uploads.slice(at + 1);
  // S3 orders keys by their UTF-8 bytes.
  return uploads.filter((u) => Buffer.compare(Buffer.from(u.key), Buffer.from(keyMarker)) > 0);
}

type Entry = { upload?: MultipartUploadSummary; prefix?: string };

/** Uploads whose key has the delimiter past the prefix are rolled up into one common prefix each. */
export function grouped(
  uploads: MultipartUploadSummary[],
  prefix: string,
  delimiter: string | undefined,
): Entry[] {
  const entries: Entry[] = [];
  const seen = new Set<string>();
  for (const upload of uploads) {
    const at = delimiter === undefined ? -1 : upload.key.indexOf(delimiter, prefix.length);
    if (at < 0) {
      entries.push({ upload });
      continue;
    }
    const common = upload.key.slice(0, at + delimiter!.length);
    if (!seen.has(common)) entries.push({ prefix: common });
    seen.add(common);
  }
  return entries;
}

/**
 * What an S3 request asks for, read from its method, Host, raw path and raw
 * query alone: the bucket, the key and the operation. Path-style
 * (`/bucket/key`) and, under a configured S3 domain, virtual-host style
 * (`bucket.s3.example.com/key`). Bucket name syntax is checked elsewhere.
 */
import { S3Error } from './s3-errors.js';
import { MAX_KEY_BYTES } from '../../shared/s3-names.js';

/** The operations the API serves, and 'NotImplemented' for any other subresource (answered 501). */
export type S3Operation =
  | 'ListBuckets'
  | 'CreateBucket'
  | 'HeadBucket'
  | 'DeleteBucket'
  | 'GetBucketLocation'
  | 'ListObjects'
  | 'ListObjectsV2'
  | 'ListMultipartUploads'
  | 'DeleteObjects'
  | 'PutObject'
  | 'CopyObject'
  | 'UploadPart'
  | 'UploadPartCopy'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'CreateMultipartUpload'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'NotImplemented';

/** The parts of an HTTP request that name an S3 operation. */
export interface S3RequestLine {
  method: string;
  /** The Host header, port included or not. */
  host?: string | undefined;
  /** The path as sent, still percent-encoded: a URL parser would resolve `.`/`..` segments of keys. */
  rawPath: string;
  /** The query as sent, without the `?`. */
  rawQuery: string;
  /** The `x-amz-copy-source` header, which turns a PUT into a copy. */
  copySource?: string | undefined;
}

export interface S3RequestOptions {
  /** The configured S3_DOMAIN: `<bucket>.<domain>` hosts name their bucket (virtual-host style). */
  domain?: string | undefined;
}

/** An S3 request, routed. */
export interface S3Request {
  operation: S3Operation;
  bucket?: string;
  key?: string;
  /** The decoded query parameters (first value of each name). */
  query: Map<string, string>;
  /** `partNumber`, checked to be 1..10000: UploadPart's part, or GetObject/HeadObject's. */
  partNumber?: number;
  uploadId?: string;
}

/** S3's highest part number. */
export const MAX_PART_NUMBER = 10_000;

/**
 * Subresources of S3 that this API does not serve. Other unknown parameters
 * are ignored as S3 ignores them: SDKs add `x-id=<Operation>`, presigned URLs
 * `X-Amz-*`, GetObject takes `response-*`.
 */
const UNSUPPORTED_SUBRESOURCES: ReadonlySet<string> = new Set([
  'accelerate',
  'acl',
  'analytics',
  'attributes',
  'cors',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'logging',
  'metadataConfiguration',
  'metadataTable',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'renameObject',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'select-type',
  'session',
  'tagging',
  'torrent',
  'versioning',
  'versions',
  'website',
]);

/** Routes an S3 request; throws an S3Error for a malformed one. */
export function parseS3Request(line: S3RequestLine, options: S3RequestOptions = {}): S3Request {
  const { bucket, key } = locate(line, options.domain);
  const query = parseQuery(line.rawQuery);
  const request: S3Request = { operation: 'NotImplemented', query };
  if (bucket !== undefined) request.bucket = bucket;
  if (key !== undefined) request.key = checkKey(key);
  const partNumber = query.get('partNumber');
  if (partNumber !== undefined) request.partNumber = parsePartNumber(partNumber);
  const uploadId = query.get('uploadId');
  if (uploadId !== undefined) request.uploadId = uploadId;
  request.operation = operationOf(line, request);
  return request;
}

/** Splits a request target (`/b/k?x=1`) into its raw path and raw query. */
export function splitTarget(target: string): { rawPath: string; rawQuery: string } {
  const at = target.indexOf('?');
  return at < 0
    ? { rawPath: target, rawQuery: '' }
    : { rawPath: target.slice(0, at), rawQuery: target.slice(at + 1) };
}

function locate(
  line: S3RequestLine,
  domain: string | undefined,
): { bucket?: string; key?: string } {
  if (!line.rawPath.startsWith('/')) {
    throw new S3Error('InvalidURI', "Couldn't parse the specified URI.");
  }
  const hostBucket = bucketOfHost(line.host, domain);
  const path = line.rawPath.slice(1);
  if (hostBucket !== undefined) {
    return path === '' ? { bucket: hostBucket } : { bucket: hostBucket, key: decodePath(path) };
  }
  if (path === '') return {};
  const slash = path.indexOf('/');
  // `/bucket/` is the bucket itself: S3 has no empty keys.
  if (slash < 0 || slash === path.length - 1) {
    return { bucket: decodePath(slash < 0 ? path : path.slice(0, slash)) };
  }
  return { bucket: decodePath(path.slice(0, slash)), key: decodePath(path.slice(slash + 1)) };
}

/** The bucket a `<bucket>.<domain>` Host names; undefined for the bare domain or any other host. */
export function bucketOfHost(
  host: string | undefined,
  domain: string | undefined,
): string | undefined {
  if (host === undefined || domain === undefined || domain === '') return undefined;
  const name = stripPort(host).toLowerCase();
  const suffix = `.${domain.toLowerCase().replace(/\.$/, '')}`;
  const bare = name.replace(/\.$/, '');
  if (!bare.endsWith(suffix) || bare.length === suffix.length) return undefined;
  return bare.slice(0, -suffix.length);
}

function stripPort(host: string): string {
  // An IPv6 literal keeps its colons inside brackets.
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

/**
 * Percent-decodes a path segment as UTF-8. A `+` stays a plus: only query
 * strings use `+` for a space.
 */
function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new S3Error('InvalidURI', "Couldn't parse the specified URI.");
  }
}

function checkKey(key: string): string {
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new S3Error('KeyTooLongError', 'Your key is too long');
  }
  return key;
}

/**
 * The query's parameters, first value of each name. `+` is a space here as
 * in any form-encoded query (SDKs send `%2B` for a plus, `%20` for a space).
 */
export function parseQuery(rawQuery: string): Map<string, string> {
  const query = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(rawQuery)) {
    if (!query.has(name)) query.set(name, value);
  }
  return query;
}

function parsePartNumber(raw: string): number {
  const part = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!(part >= 1 && part <= MAX_PART_NUMBER)) {
    throw new S3Error(
      'InvalidArgument',
      `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
    );
  }
  return part;
}

function operationOf(line: S3RequestLine, request: S3Request): S3Operation {
  const { query } = request;
  if (unsupportedSubresource(query)) return 'NotImplemented';
  const method = line.method.toUpperCase();
  if (request.bucket === undefined) {
    if (method === 'GET') return 'ListBuckets';
    throw methodNotAllowed(method);
  }
  if (request.key === undefined) return bucketOperation(method, query);
  return objectOperation(method, request, line.copySource !== undefined);
}

function unsupportedSubresource(query: Map<string, string>): boolean {
  for (const name of query.keys()) {
    if (UNSUPPORTED_SUBRESOURCES.has(name)) return true;
  }
  // Unversioned buckets answer `versionId=null` as if it were absent.
  const versionId = query.get('versionId');
  return versionId !== undefined && versionId !== 'null';
}

function bucketOperation(method: string, query: Map<string, string>): S3Operation {
  switch (method) {
    case 'GET':
      if (query.has('location')) return 'GetBucketLocation';
      if (query.has('uploads')) return 'ListMultipartUploads';
      return query.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
    case 'PUT':
      return 'CreateBucket';
    case 'HEAD':
      return 'HeadBucket';
    case 'DELETE':
      return 'DeleteBucket';
    case 'POST':
      // A POST without `?delete` is a browser form upload (POST Object).
      return query.has('delete') ? 'DeleteObjects' : 'NotImplemented';
    default:
      throw methodNotAllowed(method);
  }
}

function objectOperation(method: string, request: S3Request, copy: boolean): S3Operation {
  const hasUploadId = request.uploadId !== undefined;
  switch (method) {
    case 'GET':
      return hasUploadId ? 'ListParts' : 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    case 'PUT':
      return putOperation(request, copy);
    case 'DELETE':
      return hasUploadId ? 'AbortMultipartUpload' : 'DeleteObject';
    case 'POST':
      if (request.query.has('uploads')) return 'CreateMultipartUpload';
      if (hasUploadId) return 'CompleteMultipartUpload';
      throw methodNotAllowed(method);
    default:
      throw methodNotAllowed(method);
  }
}

function putOperation(request: S3Request, copy: boolean): S3Operation {
  const hasPart = request.partNumber !== undefined;
  if (hasPart !== (request.uploadId !== undefined)) {
    // Half an UploadPart would otherwise overwrite the whole object.
    throw new S3Error('InvalidArgument', 'partNumber and uploadId must be given together');
  }
  if (hasPart) return copy ? 'UploadPartCopy' : 'UploadPart';
  return copy ? 'CopyObject' : 'PutObject';
}

function methodNotAllowed(method: string): S3Error {
  return new S3Error(
    'MethodNotAllowed',
    `The specified method (${method}) is not allowed against this resource.`,
  );
}

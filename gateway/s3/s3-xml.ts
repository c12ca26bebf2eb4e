/**
 * The XML bodies of the S3 API's responses, as S3 writes them: its
 * namespace, ISO timestamps with milliseconds, quoted ETags, and keys
 * url-encoded when a listing asks for EncodingType=url. SDKs read these,
 * so element names and nesting follow S3's documents exactly.
 */
import type { ListV1Request, ListV1Result, ListV2Request, ListV2Result } from './listing.js';
import {
  escapeXml,
  isoTime,
  leaf,
  node,
  plainDocument,
  quoteEtag,
  s3Document,
  s3UrlEncode,
} from './xml-writer.js';

/** The owner shown in listings (the account of the access key). */
export interface Owner {
  id: string;
  displayName: string;
}

/** An object as listings show it. */
export interface ObjectSummary {
  key: string;
  lastModified: Date;
  /** With or without its double quotes. */
  etag: string;
  size: number;
}

export interface ErrorXml {
  code: string;
  message: string;
  /** The bucket or object the request was about, e.g. `/bucket/key`. */
  resource?: string | undefined;
  requestId?: string | undefined;
  /** Extra elements after the message (an S3Error's `details`), in order. */
  details?: Readonly<Record<string, string>> | undefined;
}

/** An error response: S3's `<Error>`, without a namespace. */
export function errorXml(error: ErrorXml): string {
  return plainDocument(
    'Error',
    leaf('Code', error.code),
    leaf('Message', error.message),
    ...Object.entries(error.details ?? {}).map(([name, value]) => leaf(name, value)),
    leaf('Resource', error.resource),
    leaf('RequestId', error.requestId),
  );
}

export interface BucketSummary {
  name: string;
  creationDate: Date;
}

/** ListBuckets. */
export function listAllMyBucketsXml(owner: Owner, buckets: readonly BucketSummary[]): string {
  const entries = buckets.map((bucket) =>
    node('Bucket', leaf('Name', bucket.name), leaf('CreationDate', isoTime(bucket.creationDate))),
  );
  return s3Document(
    'ListAllMyBucketsResult',
    ownerXml('Owner', owner),
    node('Buckets', ...entries),
  );
}

/** GetBucketLocation: an empty constraint means us-east-1, as S3 answers for it. */
export function locationConstraintXml(region: string): string {
  return s3Document('LocationConstraint', region === 'us-east-1' ? '' : escapeXml(region));
}

/** ListObjects (v1): every object carries its owner, NextMarker only with a delimiter. */
export function listObjectsV1Xml(
  bucket: string,
  request: ListV1Request,
  result: ListV1Result<ObjectSummary>,
  owner: Owner,
): string {
  const encode = encoder(request.encodingType);
  return s3Document(
    'ListBucketResult',
    leaf('Name', bucket),
    leaf('Prefix', encode(request.prefix)),
    leaf('Marker', encode(request.marker)),
    leaf('NextMarker', mapDefined(result.nextMarker, encode)),
    leaf('MaxKeys', request.maxKeys),
    leaf('Delimiter', mapDefined(request.delimiter, encode)),
    leaf('IsTruncated', result.isTruncated),
    leaf('EncodingType', request.encodingType),
    ...result.contents.map((object) => contentsXml(object, encode, owner)),
    ...commonPrefixesXml(result.commonPrefixes, encode),
  );
}

/** ListObjectsV2: owners only with fetch-owner=true. */
export function listObjectsV2Xml(
  bucket: string,
  request: ListV2Request,
  result: ListV2Result<ObjectSummary>,
  owner: Owner,
): string {
  const encode = encoder(request.encodingType);
  const objectOwner = request.fetchOwner ? owner : undefined;
  return s3Document(
    'ListBucketResult',
    leaf('Name', bucket),
    leaf('Prefix', encode(request.prefix)),
    leaf('ContinuationToken', request.continuationToken),
    leaf('NextContinuationToken', result.nextContinuationToken),
    leaf('KeyCount', result.keyCount),
    leaf('MaxKeys', request.maxKeys),
    leaf('Delimiter', mapDefined(request.delimiter, encode)),
    leaf('IsTruncated', result.isTruncated),
    leaf('StartAfter', mapDefined(request.startAfter, encode)),
    leaf('EncodingType', request.encodingType),
    ...result.contents.map((object) => contentsXml(object, encode, objectOwner)),
    ...commonPrefixesXml(result.commonPrefixes, encode),
  );
}

function contentsXml(object: ObjectSummary, encode: Encode, owner: Owner | undefined): string {
  return node(
    'Contents',
    leaf('Key', encode(object.key)),
    leaf('LastModified', isoTime(object.lastModified)),
    leaf('ETag', quoteEtag(object.etag)),
    leaf('Size', object.size),
    owner ? ownerXml('Owner', owner) : '',
    leaf('StorageClass', 'STANDARD'),
  );
}

function commonPrefixesXml(prefixes: readonly string[], encode: Encode): string[] {
  return prefixes.map((prefix) => node('CommonPrefixes', leaf('Prefix', encode(prefix))));
}

/** CreateMultipartUpload. */
export function initiateMultipartUploadXml(bucket: string, key: string, uploadId: string): string {
  return s3Document(
    'InitiateMultipartUploadResult',
    leaf('Bucket', bucket),
    leaf('Key', key),
    leaf('UploadId', uploadId),
  );
}

export interface CompletedUpload {
  /** The object's URL. */
  location: string;
  bucket: string;
  key: string;
  /** The multipart ETag (`<md5 of the part md5s>-<part count>`). */
  etag: string;
}

/** CompleteMultipartUpload. */
export function completeMultipartUploadXml(upload: CompletedUpload): string {
  return s3Document(
    'CompleteMultipartUploadResult',
    leaf('Location', upload.location),
    leaf('Bucket', upload.bucket),
    leaf('Key', upload.key),
    leaf('ETag', quoteEtag(upload.etag)),
  );
}

export interface PartSummary {
  partNumber: number;
  lastModified: Date;
  etag: string;
  size: number;
}

export interface ListPartsXml {
  bucket: string;
  key: string;
  uploadId: string;
  owner: Owner;
  /** The part-number-marker of the request (0 when none). */
  partNumberMarker: number;
  /** The last part listed, where a truncated page continues. */
  nextPartNumberMarker?: number | undefined;
  maxParts: number;
  isTruncated: boolean;
  parts: readonly PartSummary[];
}

/** ListParts. */
export function listPartsXml(list: ListPartsXml): string {
  const parts = list.parts.map((part) =>
    node(
      'Part',
      leaf('PartNumber', part.partNumber),
      leaf('LastModified', isoTime(part.lastModified)),
      leaf('ETag', quoteEtag(part.etag)),
      leaf('Size', part.size),
    ),
  );
  return s3Document(
    'ListPartsResult',
    leaf('Bucket', list.bucket),
    leaf('Key', list.key),
    leaf('UploadId', list.uploadId),
    ownerXml('Initiator', list.owner),
    ownerXml('Owner', list.owner),
    leaf('StorageClass', 'STANDARD'),
    leaf('PartNumberMarker', list.partNumberMarker),
    leaf('NextPartNumberMarker', list.nextPartNumberMarker),
    leaf('MaxParts', list.maxParts),
    leaf('IsTruncated', list.isTruncated),
    ...parts,
  );
}

export interface UploadSummary {
  key: string;
  uploadId: string;
  initiated: Date;
}

export interface ListMultipartUploadsXml {
  bucket: string;
  owner: Owner;
  prefix: string;
  delimiter?: string | undefined;
  keyMarker: string;
  uploadIdMarker: string;
  nextKeyMarker?: string | undefined;
  nextUploadIdMarker?: string | undefined;
  maxUploads: number;
  isTruncated: boolean;
  encodingType?: 'url' | undefined;
  uploads: readonly UploadSummary[];
  commonPrefixes: readonly string[];
}

/** ListMultipartUploads. */
export function listMultipartUploadsXml(list: ListMultipartUploadsXml): string {
  const encode = encoder(list.encodingType);
  const uploads = list.uploads.map((upload) =>
    node(
      'Upload',
      leaf('Key', encode(upload.key)),
      leaf('UploadId', upload.uploadId),
      ownerXml('Initiator', list.owner),
      ownerXml('Owner', list.owner),
      leaf('StorageClass', 'STANDARD'),
      leaf('Initiated', isoTime(upload.initiated)),
    ),
  );
  return s3Document(
    'ListMultipartUploadsResult',
    leaf('Bucket', list.bucket),
    leaf('KeyMarker', encode(list.keyMarker)),
    leaf('UploadIdMarker', list.uploadIdMarker),
    leaf('NextKeyMarker', mapDefined(list.nextKeyMarker, encode)),
    leaf('NextUploadIdMarker', list.nextUploadIdMarker),
    leaf('Prefix', encode(list.prefix)),
    leaf('Delimiter', mapDefined(list.delimiter, encode)),
    leaf('MaxUploads', list.maxUploads),
    leaf('IsTruncated', list.isTruncated),
    leaf('EncodingType', list.encodingType),
    ...uploads,
    ...commonPrefixesXml(list.commonPrefixes, encode),
  );
}

/** CopyObject's body. */
export function copyObjectResultXml(etag: string, lastModified: Date): string {
  return s3Document(
    'CopyObjectResult',
    leaf('ETag', quoteEtag(etag)),
    leaf('LastModified', isoTime(lastModified)),
  );
}

/** UploadPartCopy's body. */
export function copyPartResultXml(etag: string, lastModified: Date): string {
  return s3Document(
    'CopyPartResult',
    leaf('ETag', quoteEtag(etag)),
    leaf('LastModified', isoTime(lastModified)),
  );
}

export interface DeleteFailure {
  key: string;
  code: string;
  message: string;
}

/** DeleteObjects: in quiet mode the caller passes no deleted keys, only failures. */
export function deleteResultXml(
  deleted: readonly string[],
  errors: readonly DeleteFailure[],
): string {
  return s3Document(
    'DeleteResult',
    ...deleted.map((key) => node('Deleted', leaf('Key', key))),
    ...errors.map((error) =>
      node(
        'Error',
        leaf('Key', error.key),
        leaf('Code', error.code),
        leaf('Message', error.message),
      ),
    ),
  );
}

type Encode = (text: string) => string;

function encoder(encodingType: 'url' | undefined): Encode {
  return encodingType === 'url' ? s3UrlEncode : (text) => text;
}

function mapDefined(value: string | undefined, encode: Encode): string | undefined {
  return value === undefined ? undefined : encode(value);
}

function ownerXml(name: 'Owner' | 'Initiator', owner: Owner): string {
  return node(name, leaf('ID', owner.id), leaf('DisplayName', owner.displayName));
}

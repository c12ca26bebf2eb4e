/**
 * The S3 API's part of the metadata store: access keys, buckets, and
 * objects (a key naming a Trove file). The bytes, the share link, the
 * download count and the expiry of an object stay its file's (the `files`
 * table); an object row only names the file and keeps what S3 answers with
 * (ETag, size, type, user metadata). Multipart uploads are resumable
 * uploads (`resumable_uploads`, `upload_parts`) that carry a bucket and key.
 *
 * Object visibility: an object is listed and found only while its file is
 * committed, not a tombstone, and not expired at the `now` the caller
 * passes. A file whose downloads are used up is still listed (HEAD and
 * listings show it; GET refuses it, as /download does). An object row whose
 * file is purged goes with it (ON DELETE CASCADE).
 */
import type { FileRecord, UploadPart } from './metadata-store.js';

/** An access key's row: the secret only sealed (gateway/s3/secret-box.ts), never in plain text. */
export interface AccessKeyRecord {
  /** `TRV` + 17 uppercase letters and digits. */
  id: string;
  name: string;
  /** The secret, sealed under the key derived from the cluster secret; null once revoked. */
  sealedSecret: string | null;
  createdAt: number;
  /** When it was revoked; null while it is active. */
  revokedAt: number | null;
}

export interface S3Bucket {
  name: string;
  /** The access key that created it. */
  owner: string;
  createdAt: number;
  /** What PutObject uses when x-amz-meta-max-downloads is absent; null: the gateway's default. */
  defaultMaxDownloads: number | null;
  /** What PutObject uses when x-amz-meta-ttl is absent; null: the gateway's default. */
  defaultTtlSeconds: number | null;
}

export interface BucketDefaults {
  maxDownloads: number | null;
  ttlSeconds: number | null;
}

/** `created`, or why not: the name is taken by another key, or by this one (S3's BucketAlreadyOwnedByYou). */
export type CreateBucketResult = 'created' | 'exists' | 'owned-by-you';

/** `deleted`, or why not: it still has objects (S3's BucketNotEmpty), or there is no such bucket. */
export type DeleteBucketResult = 'deleted' | 'not-empty' | 'no-bucket';

export interface S3Object {
  bucket: string;
  key: string;
  /** The Trove file holding the bytes. */
  fileId: string;
  /** As S3 answers it, quotes included: `"<md5>"`, or `"<md5 of md5s>-<parts>"` for multipart. */
  etag: string;
  size: number;
  contentType: string;
  /** ms since the epoch. */
  lastModified: number;
  /** x-amz-meta-* headers, names lowercased and without the prefix. */
  userMetadata: Record<string, string>;
  /** Hex MD5 of the bytes of a single-part upload (Content-MD5 checks, the ETag); null for multipart. */
  md5: string | null;
}

/** A bucket, and one of its objects and that object's file if it is visible. */
export type BucketObject =
  | { bucket: S3Bucket; object: S3Object; file: FileRecord }
  | { bucket: S3Bucket; object: undefined; file: undefined };

export type PutObjectResult =
  /** The row is in place; the file it replaced (to tombstone), if any and if another one. */
  | { status: 'stored'; previousFileId: string | undefined }
  /** No such bucket (deleted meanwhile): nothing stored. */
  | { status: 'no-bucket' }
  /** The file is not committed, or is a tombstone: nothing stored. */
  | { status: 'file-gone' };

export interface ListObjectsQuery {
  /** Only keys starting with this. */
  prefix?: string;
  /** Only keys after this one (exclusive), in UTF-8 byte order. */
  startAfter?: string;
  /**
   * Only keys at or after this one: with `afterPrefix(commonPrefix)` a
   * delimiter listing skips everything under a common prefix in one step.
   */
  startAt?: string;
  limit: number;
  /** The time expiry is judged at (ms). */
  now: number;
}

/** An S3 multipart upload: a resumable upload with a bucket and key. */
export interface MultipartUploadSummary {
  uploadId: string;
  bucket: string;
  key: string;
  createdAt: number;
}

/** An S3 part's bytes, stored on `nodes`. */
export interface NumberedPart {
  uploadId: string;
  key: string;
  partNumber: number;
  size: number;
  sha256: string;
  md5: string;
  nodes: string[];
}

export interface S3MetadataStore {
  /** Records a new access key (its secret already sealed). */
  createAccessKey(key: Omit<AccessKeyRecord, 'revokedAt'>): Promise<void>;
  getAccessKey(id: string): Promise<AccessKeyRecord | undefined>;
  /** Every key, revoked ones too, oldest first. */
  listAccessKeys(): Promise<AccessKeyRecord[]>;
  /** Marks an active key revoked and drops its sealed secret; false when unknown or revoked already. */
  revokeAccessKey(id: string, at: number): Promise<boolean>;

  /** One statement: of two creators of the same name exactly one gets `created`. */
  createBucket(
    bucket: Omit<S3Bucket, 'defaultMaxDownloads' | 'defaultTtlSeconds'>,
  ): Promise<CreateBucketResult>;
  getBucket(name: string): Promise<S3Bucket | undefined>;
  /** The buckets `owner` created, by name. */
  listBuckets(owner: string): Promise<S3Bucket[]>;
  /** Replaces a bucket's defaults (null: the gateway's); false when there is no such bucket. */
  setBucketDefaults(name: string, defaults: BucketDefaults): Promise<boolean>;
  /**
   * Deletes a bucket with no visible object at `now`. Rows of objects whose
   * files are gone or expired are removed with it (the files themselves are
   * the expiry sweep's). A concurrent put that lands first makes it `not-empty`.
   */
  deleteBucket(name: string, now: number): Promise<DeleteBucketResult>;

  /**
   * Points `bucket`/`key` at a committed live file, replacing any row there,
   * in one transaction: `previousFileId` is the file replaced, which the
   * caller tombstones (of two concurrent puts, each learns the file it
   * replaced, so none is left without a row and without a tombstone).
   */
  putObject(object: S3Object): Promise<PutObjectResult>;
  /** The object, if it is visible at `now` (see the module comment). */
  getObject(bucket: string, key: string, now: number): Promise<S3Object | undefined>;
  /**
   * getBucket and getObject in one read (GetObject's and HeadObject's
   * lookup, on every read of an object): undefined when there is no such
   * bucket.
   */
  findObject(bucket: string, key: string, now: number): Promise<BucketObject | undefined>;
  /** Removes the row, visible or not; returns the file it named (the caller tombstones it). */
  deleteObject(bucket: string, key: string): Promise<string | undefined>;
  /** Visible objects in UTF-8 byte order of their keys, at most `limit`. */
  listObjects(bucket: string, q: ListObjectsQuery): Promise<S3Object[]>;

  /**
   * Multipart uploads of `bucket` still `uploading`, keys starting with
   * `prefix`, by key then creation (S3's ListMultipartUploads order).
   */
  listMultipartUploads(
    bucket: string,
    q: { prefix?: string; limit: number },
  ): Promise<MultipartUploadSummary[]>;
  /**
   * Marks a begun S3 part (beginPart with its number) stored, in one
   * transaction, while its upload is an S3 upload still `uploading`. S3
   * parts come in any order and may be sent again; the last one stored
   * wins. The stored parts of the same number that it replaces turn back to
   * `stored: false` (no longer the upload's, still tracked) and are
   * returned: their blobs are the caller's to remove (then forgetPart).
   * The upload's offset counts the bytes of its stored parts.
   */
  storeNumberedPart(part: NumberedPart): Promise<{ stored: boolean; replaced: UploadPart[] }>;
  /** The stored parts of an S3 upload (one per number), by number (S3's ListParts). */
  listParts(uploadId: string): Promise<UploadPart[]>;
}

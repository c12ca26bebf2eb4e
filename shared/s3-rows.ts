/**
 * What the SQL stores (SQLite, PostgreSQL) share of the S3 tables: their rows
 * and records, the visibility condition of an object, and the listing's query.
 */
import type {
  AccessKeyRecord,
  BucketObject,
  ListObjectsQuery,
  S3Bucket,
  S3Object,
} from './s3-metadata.js';
import { FILE_COLUMNS, toFile, type FileRow } from './metadata-rows.js';
import { afterPrefix } from './s3-names.js';

export interface AccessKeyRow {
  id: string;
  name: string;
  sealed_secret: string | null;
  created_at: number;
  revoked_at: number | null;
}

export function toAccessKey(r: AccessKeyRow): AccessKeyRecord {
  return {
    id: r.id,
    name: r.name,
    sealedSecret: r.sealed_secret,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}

export interface BucketRow {
  name: string;
  owner: string;
  created_at: number;
  default_max_downloads: number | null;
  default_ttl_seconds: number | null;
}

export function toBucket(r: BucketRow): S3Bucket {
  return {
    name: r.name,
    owner: r.owner,
    createdAt: r.created_at,
    defaultMaxDownloads: r.default_max_downloads,
    defaultTtlSeconds: r.default_ttl_seconds,
  };
}

export interface ObjectRow {
  bucket: string;
  key: string;
  file_id: string;
  etag: string;
  size: number;
  content_type: string;
  last_modified: number;
  /** x-amz-meta-* as JSON text. */
  user_metadata: string;
  md5: string | null;
}

export function toObject(r: ObjectRow): S3Object {
  return {
    bucket: r.bucket,
    key: r.key,
    fileId: r.file_id,
    etag: r.etag,
    size: r.size,
    contentType: r.content_type,
    lastModified: r.last_modified,
    userMetadata: JSON.parse(r.user_metadata) as Record<string, string>,
    md5: r.md5,
  };
}

/** An object's columns in `objectRow`'s order, for inserts. */
export const OBJECT_COLUMNS = [
  'bucket',
  'key',
  'file_id',
  'etag',
  'size',
  'content_type',
  'last_modified',
  'user_metadata',
  'md5',
] as const;

export function objectRow(o: S3Object): ObjectRow {
  return {
    bucket: o.bucket,
    key: o.key,
    file_id: o.fileId,
    etag: o.etag,
    size: o.size,
    content_type: o.contentType,
    last_modified: o.lastModified,
    user_metadata: JSON.stringify(o.userMetadata),
    md5: o.md5,
  };
}

/** A bucket's columns in the order GetObject's lookup reads them. */
const BUCKET_COLUMNS = [
  'name',
  'owner',
  'created_at',
  'default_max_downloads',
  'default_ttl_seconds',
] as const satisfies readonly (keyof BucketRow)[];

/**
 * GetObject's lookup in one statement: the bucket (no row: no such bucket),
 * its object `key` with whether it is visible at `now`, and the object's
 * file (the read path's record, so no second read follows), placeholders in
 * the store's dialect. Plain left joins, each by its index: a join nested in
 * parentheses is materialised whole by SQLite (every visible object, on
 * every read). Its columns come in a fixed order (the bucket's, the
 * object's, the file's, then whether the object is visible), which
 * toBucketObject reads by position.
 */
export const bucketObjectSql = (bucket: string, key: string, now: string) =>
  `SELECT ${[
    ...BUCKET_COLUMNS.map((c) => `b.${c} AS b_${c}`),
    ...OBJECT_COLUMNS.map((c) => `o.${c} AS o_${c}`),
    ...FILE_COLUMNS.map((c) => `f.${c} AS f_${c}`),
  ].join(', ')},
          (f.id IS NOT NULL AND ${visibleFile(now)}) AS object_visible
   FROM s3_buckets b
   LEFT JOIN s3_objects o ON o.bucket = b.name AND o.key = ${key}
   LEFT JOIN files f ON f.id = o.file_id
   WHERE b.name = ${bucket}`;

/**
 * A row of bucketObjectSql as its values in column order: SQLite's raw row,
 * or Object.values of PostgreSQL's. By position, because this runs on every
 * read of an object, and a row object with 32 keys costs SQLite a string
 * lookup per key.
 */
export function toBucketObject(values: readonly unknown[]): BucketObject {
  let at = 0;
  const next = <C extends string>(columns: readonly C[]) => {
    const row = {} as Record<C, unknown>;
    for (const column of columns) row[column] = values[at++];
    return row;
  };
  const bucket = toBucket(next(BUCKET_COLUMNS) as unknown as BucketRow);
  // Visible: 1/0 in SQLite, a boolean in PostgreSQL; null without an object.
  if (!values[values.length - 1]) return { bucket, object: undefined, file: undefined };
  const object = toObject(next(OBJECT_COLUMNS) as unknown as ObjectRow);
  return { bucket, object, file: toFile(next(FILE_COLUMNS) as unknown as FileRow) };
}

/**
 * An object is visible while its file (alias `f`) is committed, not a
 * tombstone, and not expired at `now`: the files table alone decides, so an
 * expired object disappears at its expiry, before the sweep tombstones it.
 */
export const visibleFile = (now: string) =>
  `f.state = 'committed' AND f.deleted_at IS NULL AND f.expires_at > ${now}`;

/**
 * The listing as SQL, in byte order of the keys (the key column compares
 * byte-wise in both stores: SQLite's BINARY, PostgreSQL's COLLATE "C"). A
 * prefix is a key range, [prefix, afterPrefix(prefix)), which the primary
 * key's index serves (a LIKE would treat `%` and `_` as patterns).
 * `param` binds a value and returns its placeholder in the store's dialect.
 */
export function listObjectsSql(
  bucket: string,
  q: ListObjectsQuery,
  param: (value: number | string) => string,
): string {
  const where = [`o.bucket = ${param(bucket)}`, visibleFile(param(q.now))];
  if (q.prefix) {
    where.push(`o.key >= ${param(q.prefix)}`);
    const end = afterPrefix(q.prefix);
    if (end !== undefined) where.push(`o.key < ${param(end)}`);
  }
  if (q.startAfter !== undefined) where.push(`o.key > ${param(q.startAfter)}`);
  if (q.startAt !== undefined) where.push(`o.key >= ${param(q.startAt)}`);
  return `SELECT o.* FROM s3_objects o JOIN files f ON f.id = o.file_id
          WHERE ${where.join(' AND ')} ORDER BY o.key LIMIT ${param(q.limit)}`;
}

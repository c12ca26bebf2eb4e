/**
 * The S3 part of the SQLite metadata store (s3-metadata.ts), on the same
 * database handle; SqliteMetadataStore exposes it as `store.s3`. Every
 * check-then-write is one IMMEDIATE transaction: SQLite's single writer
 * orders them across every process sharing the file.
 */
import type Database from 'better-sqlite3';
import { toPart, type PartRow } from './metadata-rows.js';
import type { UploadPart } from './metadata-store.js';
import type {
  AccessKeyRecord,
  BucketDefaults,
  BucketObject,
  CreateBucketResult,
  DeleteBucketResult,
  ListObjectsQuery,
  MultipartUploadSummary,
  NumberedPart,
  PutObjectResult,
  S3Bucket,
  S3MetadataStore,
  S3Object,
} from './s3-metadata.js';
import { afterPrefix } from './s3-names.js';
import {
  type AccessKeyRow,
  bucketObjectSql,
  type BucketRow,
  listObjectsSql,
  type ObjectRow,
  objectRow,
  toAccessKey,
  toBucket,
  toBucketObject,
  toObject,
  visibleFile,
} from './s3-rows.js';

function statements(db: Database.Database) {
  return {
    insertKey: db.prepare(
      `INSERT INTO s3_access_keys (id, name, sealed_secret, created_at) VALUES (?, ?, ?, ?)`,
    ),
    getKey: db.prepare(`SELECT * FROM s3_access_keys WHERE id = ?`),
    listKeys: db.prepare(`SELECT * FROM s3_access_keys ORDER BY created_at, id`),
    revokeKey: db.prepare(
      `UPDATE s3_access_keys SET revoked_at = ?, sealed_secret = NULL
       WHERE id = ? AND revoked_at IS NULL`,
    ),
    insertBucket: db.prepare(
      `INSERT INTO s3_buckets (name, owner, created_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO NOTHING`,
    ),
    getBucket: db.prepare(`SELECT * FROM s3_buckets WHERE name = ?`),
    listBuckets: db.prepare(`SELECT * FROM s3_buckets WHERE owner = ? ORDER BY name`),
    setDefaults: db.prepare(
      `UPDATE s3_buckets SET default_max_downloads = ?, default_ttl_seconds = ? WHERE name = ?`,
    ),
    hasVisible: db.prepare(
      `SELECT 1 FROM s3_objects o JOIN files f ON f.id = o.file_id
       WHERE o.bucket = @name AND ${visibleFile('@now')} LIMIT 1`,
    ),
    dropObjects: db.prepare(`DELETE FROM s3_objects WHERE bucket = ?`),
    deleteBucket: db.prepare(`DELETE FROM s3_buckets WHERE name = ?`),
    liveFile: db.prepare(
      `SELECT 1 FROM files WHERE id = ? AND state = 'committed' AND deleted_at IS NULL`,
    ),
    objectFile: db.prepare(`SELECT file_id FROM s3_objects WHERE bucket = ? AND key = ?`),
    upsertObject: db.prepare(
      `INSERT INTO s3_objects (bucket, key, file_id, etag, size, content_type, last_modified, user_metadata, md5)
       VALUES (@bucket, @key, @file_id, @etag, @size, @content_type, @last_modified, @user_metadata, @md5)
       ON CONFLICT (bucket, key) DO UPDATE SET file_id = excluded.file_id, etag = excluded.etag,
         size = excluded.size, content_type = excluded.content_type,
         last_modified = excluded.last_modified, user_metadata = excluded.user_metadata,
         md5 = excluded.md5`,
    ),
    // Raw: its columns are read by position (toBucketObject).
    findObject: db.prepare(bucketObjectSql('@bucket', '@key', '@now')).raw(),
    getObject: db.prepare(
      `SELECT o.* FROM s3_objects o JOIN files f ON f.id = o.file_id
       WHERE o.bucket = @bucket AND o.key = @key AND ${visibleFile('@now')}`,
    ),
    deleteObject: db.prepare(
      `DELETE FROM s3_objects WHERE bucket = ? AND key = ? RETURNING file_id`,
    ),
    uploads: db.prepare(
      `SELECT id, s3_bucket, s3_key, created_at FROM resumable_uploads
       WHERE s3_bucket = @bucket AND state = 'uploading'
         AND s3_key >= @from AND (@to IS NULL OR s3_key < @to)
       ORDER BY s3_key, created_at, id LIMIT @limit`,
    ),
    s3Uploading: db.prepare(
      `SELECT 1 FROM resumable_uploads WHERE id = ? AND state = 'uploading' AND s3_bucket IS NOT NULL`,
    ),
    storePart: db.prepare(
      `UPDATE upload_parts SET size = @size, sha256 = @sha256, md5 = @md5, nodes = @nodes, stored = 1
       WHERE key = @key AND upload_id = @uploadId AND part_number = @partNumber AND stored = 0`,
    ),
    // Replaced parts stop counting as stored (still tracked, so their blobs are removed).
    unstoreSameNumber: db.prepare(
      `UPDATE upload_parts SET stored = 0
       WHERE upload_id = @uploadId AND part_number = @partNumber AND stored = 1 AND key != @key
       RETURNING *`,
    ),
    // The offset counts stored bytes: this part's, less those of the parts it replaced.
    advance: db.prepare(
      `UPDATE resumable_uploads SET upload_offset = upload_offset + ? WHERE id = ?`,
    ),
    parts: db.prepare(
      `SELECT * FROM upload_parts WHERE upload_id = ? AND stored = 1 AND part_number IS NOT NULL
       ORDER BY part_number`,
    ),
  };
}

export class SqliteS3Store implements S3MetadataStore {
  private readonly q;
  private readonly listStatements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {
    this.q = statements(db);
  }

  async createAccessKey(k: Omit<AccessKeyRecord, 'revokedAt'>): Promise<void> {
    this.q.insertKey.run(k.id, k.name, k.sealedSecret, k.createdAt);
  }

  async getAccessKey(id: string): Promise<AccessKeyRecord | undefined> {
    const row = this.q.getKey.get(id) as AccessKeyRow | undefined;
    return row && toAccessKey(row);
  }

  async listAccessKeys(): Promise<AccessKeyRecord[]> {
    return (this.q.listKeys.all() as AccessKeyRow[]).map(toAccessKey);
  }

  async revokeAccessKey(id: string, at: number): Promise<boolean> {
    return this.q.revokeKey.run(at, id).changes === 1;
  }

  async createBucket(
    b: Omit<S3Bucket, 'defaultMaxDownloads' | 'defaultTtlSeconds'>,
  ): Promise<CreateBucketResult> {
    if (this.q.insertBucket.run(b.name, b.owner, b.createdAt).changes === 1) return 'created';
    const existing = this.q.getBucket.get(b.name) as BucketRow | undefined;
    return existing?.owner === b.owner ? 'owned-by-you' : 'exists';
  }

  async getBucket(name: string): Promise<S3Bucket | undefined> {
    const row = this.q.getBucket.get(name) as BucketRow | undefined;
    return row && toBucket(row);
  }

  async listBuckets(owner: string): Promise<S3Bucket[]> {
    return (this.q.listBuckets.all(owner) as BucketRow[]).map(toBucket);
  }

  async setBucketDefaults(name: string, d: BucketDefaults): Promise<boolean> {
    return this.q.setDefaults.run(d.maxDownloads, d.ttlSeconds, name).changes === 1;
  }

  async deleteBucket(name: string, now: number): Promise<DeleteBucketResult> {
    const tx = this.db.transaction((): DeleteBucketResult => {
      if (!this.q.getBucket.get(name)) return 'no-bucket';
      if (this.q.hasVisible.get({ name, now })) return 'not-empty';
      this.q.dropObjects.run(name);
      this.q.deleteBucket.run(name);
      return 'deleted';
    });
    return tx.immediate();
  }

  async putObject(o: S3Object): Promise<PutObjectResult> {
    const tx = this.db.transaction((): PutObjectResult => {
      if (!this.q.getBucket.get(o.bucket)) return { status: 'no-bucket' };
      if (!this.q.liveFile.get(o.fileId)) return { status: 'file-gone' };
      const previous = this.q.objectFile.get(o.bucket, o.key) as { file_id: string } | undefined;
      this.q.upsertObject.run(objectRow(o));
      const replaced = previous?.file_id;
      return { status: 'stored', previousFileId: replaced === o.fileId ? undefined : replaced };
    });
    return tx.immediate();
  }

  async getObject(bucket: string, key: string, now: number): Promise<S3Object | undefined> {
    const row = this.q.getObject.get({ bucket, key, now }) as ObjectRow | undefined;
    return row && toObject(row);
  }

  async findObject(bucket: string, key: string, now: number): Promise<BucketObject | undefined> {
    const values = this.q.findObject.get({ bucket, key, now }) as unknown[] | undefined;
    return values && toBucketObject(values);
  }

  async deleteObject(bucket: string, key: string): Promise<string | undefined> {
    const row = this.q.deleteObject.get(bucket, key) as { file_id: string } | undefined;
    return row?.file_id;
  }

  async listObjects(bucket: string, query: ListObjectsQuery): Promise<S3Object[]> {
    const params: Record<string, number | string> = {};
    const sql = listObjectsSql(bucket, query, (value) => {
      const name = `p${Object.keys(params).length + 1}`;
      params[name] = value;
      return `@${name}`;
    });
    return (this.listStatement(sql).all(params) as ObjectRow[]).map(toObject);
  }

  /** The few shapes of the listing query (with or without each bound), each prepared once. */
  private listStatement(sql: string): Database.Statement {
    let stmt = this.listStatements.get(sql);
    if (!stmt) this.listStatements.set(sql, (stmt = this.db.prepare(sql)));
    return stmt;
  }

  async listMultipartUploads(
    bucket: string,
    q: { prefix?: string; limit: number },
  ): Promise<MultipartUploadSummary[]> {
    const prefix = q.prefix ?? '';
    const rows = this.q.uploads.all({
      bucket,
      from: prefix,
      to: afterPrefix(prefix) ?? null,
      limit: q.limit,
    }) as { id: string; s3_bucket: string; s3_key: string; created_at: number }[];
    return rows.map((r) => ({
      uploadId: r.id,
      bucket: r.s3_bucket,
      key: r.s3_key,
      createdAt: r.created_at,
    }));
  }

  async storeNumberedPart(p: NumberedPart): Promise<{ stored: boolean; replaced: UploadPart[] }> {
    const tx = this.db.transaction(() => {
      if (!this.q.s3Uploading.get(p.uploadId)) return { stored: false, replaced: [] };
      const row = { ...p, nodes: JSON.stringify(p.nodes) };
      if (this.q.storePart.run(row).changes !== 1) return { stored: false, replaced: [] };
      const replaced = (this.q.unstoreSameNumber.all(row) as PartRow[]).map(toPart);
      const freed = replaced.reduce((sum, r) => sum + (r.size ?? 0), 0);
      this.q.advance.run(p.size - freed, p.uploadId);
      return { stored: true, replaced };
    });
    return tx.immediate();
  }

  async listParts(uploadId: string): Promise<UploadPart[]> {
    return (this.q.parts.all(uploadId) as PartRow[]).map(toPart);
  }
}

/**
 * The S3 part of the PostgreSQL metadata store (s3-metadata.ts), on the
 * store's own pool and its rules (reads retried once, writes not, a
 * transaction all or nothing); PostgresMetadataStore exposes it as
 * `store.s3`. Races are settled by row locks taken in one order: bucket row, then
 * file row, then object row; upload row, then part rows.
 */
import type { PoolClient, QueryResultRow } from 'pg';
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
  OBJECT_COLUMNS,
  type ObjectRow,
  objectRow,
  toAccessKey,
  toBucket,
  toBucketObject,
  toObject,
  visibleFile,
} from './s3-rows.js';

/** What PostgresMetadataStore lends: its read, write and transaction with their retry rules. */
export interface PgAccess {
  read<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  write<R extends QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<{ rowCount: number; rows: R[] }>;
  transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T>;
}

/** Attempts of an insert-or-update that a concurrent insert of the same key keeps beating. */
const UPSERT_ATTEMPTS = 5;

export class PostgresS3Store implements S3MetadataStore {
  constructor(private readonly pg: PgAccess) {}

  async createAccessKey(k: Omit<AccessKeyRecord, 'revokedAt'>): Promise<void> {
    await this.pg.write(
      `INSERT INTO s3_access_keys (id, name, sealed_secret, created_at) VALUES ($1, $2, $3, $4)`,
      [k.id, k.name, k.sealedSecret, k.createdAt],
    );
  }

  async getAccessKey(id: string): Promise<AccessKeyRecord | undefined> {
    const [row] = await this.pg.read<AccessKeyRow>(`SELECT * FROM s3_access_keys WHERE id = $1`, [
      id,
    ]);
    return row && toAccessKey(row);
  }

  async listAccessKeys(): Promise<AccessKeyRecord[]> {
    const rows = await this.pg.read<AccessKeyRow>(
      `SELECT * FROM s3_access_keys ORDER BY created_at, id`,
    );
    return rows.map(toAccessKey);
  }

  async revokeAccessKey(id: string, at: number): Promise<boolean> {
    const res = await this.pg.write(
      `UPDATE s3_access_keys SET revoked_at = $2, sealed_secret = NULL
       WHERE id = $1 AND revoked_at IS NULL`,
      [id, at],
    );
    return res.rowCount === 1;
  }

  /**
   * An insert that does nothing on a taken name, then the owner of whoever
   * took it; if that bucket was deleted in between, the insert is tried again.
   */
  async createBucket(
    b: Omit<S3Bucket, 'defaultMaxDownloads' | 'defaultTtlSeconds'>,
  ): Promise<CreateBucketResult> {
    for (let attempt = 1; ; attempt++) {
      const res = await this.pg.write(
        `INSERT INTO s3_buckets (name, owner, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING`,
        [b.name, b.owner, b.createdAt],
      );
      if (res.rowCount === 1) return 'created';
      const existing = await this.getBucket(b.name);
      if (existing) return existing.owner === b.owner ? 'owned-by-you' : 'exists';
      if (attempt >= UPSERT_ATTEMPTS) return 'exists';
    }
  }

  async getBucket(name: string): Promise<S3Bucket | undefined> {
    const [row] = await this.pg.read<BucketRow>(`SELECT * FROM s3_buckets WHERE name = $1`, [name]);
    return row && toBucket(row);
  }

  async listBuckets(owner: string): Promise<S3Bucket[]> {
    const rows = await this.pg.read<BucketRow>(
      `SELECT * FROM s3_buckets WHERE owner = $1 ORDER BY name`,
      [owner],
    );
    return rows.map(toBucket);
  }

  async setBucketDefaults(name: string, d: BucketDefaults): Promise<boolean> {
    const res = await this.pg.write(
      `UPDATE s3_buckets SET default_max_downloads = $2, default_ttl_seconds = $3 WHERE name = $1`,
      [name, d.maxDownloads, d.ttlSeconds],
    );
    return res.rowCount === 1;
  }

  /**
   * The bucket row is locked first (FOR UPDATE): a putObject, which
   * key-share-locks it, either committed before (its object is seen here)
   * or waits and then finds no bucket.
   */
  deleteBucket(name: string, now: number): Promise<DeleteBucketResult> {
    return this.pg.transaction(async (client) => {
      const bucket = await client.query(`SELECT 1 FROM s3_buckets WHERE name = $1 FOR UPDATE`, [
        name,
      ]);
      if (bucket.rowCount === 0) return 'no-bucket';
      const visible = await client.query(
        `SELECT 1 FROM s3_objects o JOIN files f ON f.id = o.file_id
         WHERE o.bucket = $1 AND ${visibleFile('$2')} LIMIT 1`,
        [name, now],
      );
      if ((visible.rowCount ?? 0) > 0) return 'not-empty';
      await client.query(`DELETE FROM s3_objects WHERE bucket = $1`, [name]);
      await client.query(`DELETE FROM s3_buckets WHERE name = $1`, [name]);
      return 'deleted';
    });
  }

  /**
   * One transaction: the bucket row key-share-locked (a deleteBucket waits),
   * the file row share-locked while it is live (a markDeleted waits), then
   * the object row locked before it is replaced, so the file it named is
   * read under the lock. When the key has no row yet, two puts may both
   * insert: the loser's insert does nothing, and it goes round again to
   * lock and replace the winner's row (and so learns the winner's file).
   */
  putObject(o: S3Object): Promise<PutObjectResult> {
    return this.pg.transaction(async (client): Promise<PutObjectResult> => {
      const bucket = await client.query(`SELECT 1 FROM s3_buckets WHERE name = $1 FOR KEY SHARE`, [
        o.bucket,
      ]);
      if (bucket.rowCount === 0) return { status: 'no-bucket' };
      const file = await client.query(
        `SELECT 1 FROM files WHERE id = $1 AND state = 'committed' AND deleted_at IS NULL FOR SHARE`,
        [o.fileId],
      );
      if (file.rowCount === 0) return { status: 'file-gone' };
      const row = objectRow(o);
      const values = OBJECT_COLUMNS.map((c) => row[c]);
      for (let attempt = 1; attempt <= UPSERT_ATTEMPTS; attempt++) {
        const previous = await client.query<{ file_id: string }>(
          `SELECT file_id FROM s3_objects WHERE bucket = $1 AND key = $2 FOR UPDATE`,
          [o.bucket, o.key],
        );
        const replaced = previous.rows[0]?.file_id;
        if (replaced !== undefined) {
          await client.query(
            `UPDATE s3_objects SET file_id = $3, etag = $4, size = $5, content_type = $6,
               last_modified = $7, user_metadata = $8, md5 = $9
             WHERE bucket = $1 AND key = $2`,
            values,
          );
          return { status: 'stored', previousFileId: replaced === o.fileId ? undefined : replaced };
        }
        const inserted = await client.query(
          `INSERT INTO s3_objects (${OBJECT_COLUMNS.join(', ')})
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (bucket, key) DO NOTHING`,
          values,
        );
        if (inserted.rowCount === 1) return { status: 'stored', previousFileId: undefined };
      }
      throw new Error(`putObject ${o.bucket}/${o.key}: lost ${UPSERT_ATTEMPTS} races in a row`);
    });
  }

  async findObject(bucket: string, key: string, now: number): Promise<BucketObject | undefined> {
    const [row] = await this.pg.read(bucketObjectSql('$1', '$2', '$3'), [bucket, key, now]);
    // pg keeps a row's keys in column order, and the aliases make every name distinct.
    return row && toBucketObject(Object.values(row));
  }

  async getObject(bucket: string, key: string, now: number): Promise<S3Object | undefined> {
    const [row] = await this.pg.read<ObjectRow>(
      `SELECT o.* FROM s3_objects o JOIN files f ON f.id = o.file_id
       WHERE o.bucket = $1 AND o.key = $2 AND ${visibleFile('$3')}`,
      [bucket, key, now],
    );
    return row && toObject(row);
  }

  async deleteObject(bucket: string, key: string): Promise<string | undefined> {
    const { rows } = await this.pg.write<{ file_id: string }>(
      `DELETE FROM s3_objects WHERE bucket = $1 AND key = $2 RETURNING file_id`,
      [bucket, key],
    );
    return rows[0]?.file_id;
  }

  async listObjects(bucket: string, q: ListObjectsQuery): Promise<S3Object[]> {
    const values: (number | string)[] = [];
    const sql = listObjectsSql(bucket, q, (value) => {
      values.push(value);
      return `$${values.length}`;
    });
    return (await this.pg.read<ObjectRow>(sql, values)).map(toObject);
  }

  async listMultipartUploads(
    bucket: string,
    q: { prefix?: string; limit: number },
  ): Promise<MultipartUploadSummary[]> {
    const prefix = q.prefix ?? '';
    const rows = await this.pg.read<{
      id: string;
      s3_bucket: string;
      s3_key: string;
      created_at: number;
    }>(
      `SELECT id, s3_bucket, s3_key, created_at FROM resumable_uploads
       WHERE s3_bucket = $1 AND state = 'uploading'
         AND s3_key >= $2 AND ($3::text IS NULL OR s3_key < $3::text)
       ORDER BY s3_key, created_at, id LIMIT $4`,
      [bucket, prefix, afterPrefix(prefix) ?? null, q.limit],
    );
    return rows.map((r) => ({
      uploadId: r.id,
      bucket: r.s3_bucket,
      key: r.s3_key,
      createdAt: r.created_at,
    }));
  }

  /** The upload row is locked first, as storePart does: two parts of one upload store one at a time. */
  storeNumberedPart(p: NumberedPart): Promise<{ stored: boolean; replaced: UploadPart[] }> {
    return this.pg.transaction(async (client) => {
      const upload = await client.query(
        `SELECT 1 FROM resumable_uploads
         WHERE id = $1 AND state = 'uploading' AND s3_bucket IS NOT NULL FOR NO KEY UPDATE`,
        [p.uploadId],
      );
      if (upload.rowCount === 0) return { stored: false, replaced: [] };
      const stored = await client.query(
        `UPDATE upload_parts SET size = $4, sha256 = $5, md5 = $6, nodes = $7, stored = true
         WHERE key = $1 AND upload_id = $2 AND part_number = $3 AND NOT stored`,
        [p.key, p.uploadId, p.partNumber, p.size, p.sha256, p.md5, JSON.stringify(p.nodes)],
      );
      if (stored.rowCount === 0) return { stored: false, replaced: [] };
      // Replaced parts stop counting as stored (still tracked, so their blobs are removed).
      const unstored = await client.query<PartRow>(
        `UPDATE upload_parts SET stored = false
         WHERE upload_id = $1 AND part_number = $2 AND stored AND key <> $3 RETURNING *`,
        [p.uploadId, p.partNumber, p.key],
      );
      const replaced = unstored.rows.map(toPart);
      const freed = replaced.reduce((sum, r) => sum + (r.size ?? 0), 0);
      await client.query(
        `UPDATE resumable_uploads SET upload_offset = upload_offset + $2 WHERE id = $1`,
        [p.uploadId, p.size - freed],
      );
      return { stored: true, replaced };
    });
  }

  async listParts(uploadId: string): Promise<UploadPart[]> {
    const rows = await this.pg.read<PartRow>(
      `SELECT * FROM upload_parts WHERE upload_id = $1 AND stored AND part_number IS NOT NULL
       ORDER BY part_number`,
      [uploadId],
    );
    return rows.map(toPart);
  }
}

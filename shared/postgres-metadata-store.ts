/**
 * MetadataStore on PostgreSQL (node-postgres), for gateways and workers on
 * several hosts. The database is the arbiter: every state change is one
 * conditional statement (`UPDATE … WHERE state = 'pending'`, `INSERT … ON
 * CONFLICT`), so two processes on two hosts can never both commit, abort,
 * tombstone or grant the same thing, and the loser learns it lost from the
 * rows the statement touched. Commits are durable when they resolve
 * (PostgreSQL's default `synchronous_commit = on`).
 *
 * A dropped connection (a restart, `pg_terminate_backend`, a network cut)
 * fails the statement in flight: a read is retried once on a fresh
 * connection; a write is not (it may have committed), and the caller gets a
 * 503 DATABASE_UNAVAILABLE, never a half-done change (each write is one
 * statement or one transaction). The pool reconnects by itself.
 *
 * Single statements (reads and writes) run as named prepared statements:
 * each connection parses and plans one once, then only binds and executes
 * it, which halves what PostgreSQL spends on a lookup by primary key
 * (docs/benchmarks.md, "Metadata: SQLite vs PostgreSQL"). A migration by
 * another process that changes a table's columns invalidates those plans
 * ("cached plan must not change result type"): the statement did nothing,
 * the pool drops the connection, and the statement is run again on a fresh one.
 */
import { createHash } from 'node:crypto';
import pg, { TypeOverrides, type Pool, type PoolClient, type QueryResultRow } from 'pg';
import { UnavailableError, UploadAbortedError } from './errors.js';
import type { Logger } from './logger.js';
import type { Layout } from './layout.js';
import {
  layoutRow,
  listFilesSql,
  placementSql,
  toFile,
  toLayout,
  toPart,
  toPlacedFiles,
  toReplica,
  toResumable,
  toVariant,
  type FileRow,
  type LayoutRow,
  type PartRow,
  type PlacementFileRow,
  type PlacementVariantRow,
  type ReplicaRow,
  type ResumableRow,
  type VariantRow,
} from './metadata-rows.js';
import {
  initialProcessing,
  type CommitFile,
  type DeleteReason,
  type FileListQuery,
  type FileRecord,
  type MetadataStore,
  type NewResumable,
  type NewUpload,
  type NodeReplica,
  type PlacedFile,
  type ReplicaRecord,
  type ReplicaState,
  type ResumableUpload,
  type UploadPart,
  type VariantRecord,
} from './metadata-store.js';
import { checkout, type Checkout } from './postgres-checkout.js';
import { migratePostgres } from './postgres-migrations.js';
import { PostgresS3Store } from './postgres-s3-store.js';

/** BIGINT (ms timestamps, sizes, counts) as a JS number: each stays far below 2^53. */
const types = new TypeOverrides();
types.setTypeParser(pg.types.builtins.INT8, Number);

export interface PostgresStoreOptions {
  url: string;
  /** Connections in the pool (each gateway and worker has its own pool). */
  poolSize?: number;
  /**
   * A statement running (or waiting for a lock) longer than this is cancelled
   * by the server and the request answers 503, instead of holding its
   * connection and its client forever. Migrations run without it.
   */
  statementTimeoutMs?: number;
  log: Logger;
}

const STATEMENT_TIMEOUT_MS = 30_000;

type Replicas = { key: string; node: string; state: ReplicaState }[];

/** SQLSTATE classes and codes that mean the connection, not the statement, failed. */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return (
    code.startsWith('08') || // connection exception
    code === '57P01' || // admin_shutdown (pg_terminate_backend, a fast shutdown)
    code === '57P02' || // crash_shutdown
    code === '57P03' || // cannot_connect_now (starting up)
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      (err as Error).message ?? '',
    )
  );
}

/**
 * A prepared statement planned before another process changed the table
 * (a rolling upgrade's migration): it was not executed, so running it again
 * on a fresh connection is safe for a write too.
 */
function isStalePlan(err: unknown): boolean {
  return (
    (err as { code?: string }).code === '0A000' &&
    /cached plan must not change result type/.test((err as Error).message ?? '')
  );
}

const statementNames = new Map<string, string>();

const PLACEMENT = placementSql({ afterId: '$1', limit: '$2', ids: '(SELECT unnest($1::text[]))' });

/** The statement as a named prepared one, named after its text (so one name never means two texts). */
function prepared(text: string, values: unknown[]): pg.QueryConfig {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `trove_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
    statementNames.set(text, name);
  }
  return { name, text, values };
}

/** query_canceled: the statement ran past statement_timeout (it did not commit). */
function isStatementTimeout(err: unknown): boolean {
  return (err as { code?: string }).code === '57014';
}

/** What a failed statement answers: 503 when the database, not the statement, is at fault. */
function mapped(err: unknown): unknown {
  return isConnectionError(err) || isStatementTimeout(err) ? unavailable(err) : err;
}

function unavailable(err: unknown): UnavailableError {
  return new UnavailableError(
    'the metadata database is unavailable; try again shortly',
    'DATABASE_UNAVAILABLE',
    { cause: err },
  );
}

export class PostgresMetadataStore implements MetadataStore {
  /** The S3 tables' methods (postgres-s3-store.ts). */
  readonly s3: PostgresS3Store;

  private constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
  ) {
    this.s3 = new PostgresS3Store({
      read: (text, values) => this.read(text, values),
      write: (text, values) => this.write(text, values),
      transaction: (fn) => this.transaction(fn),
    });
  }

  /** Connects, applies pending migrations (under an advisory lock), and returns the store. */
  static async open(o: PostgresStoreOptions): Promise<PostgresMetadataStore> {
    const pool = new pg.Pool({
      connectionString: o.url,
      max: o.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      statement_timeout: o.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS,
      types,
    });
    // An idle connection that dies (server restart) is dropped from the pool; no crash.
    pool.on('error', (err) => o.log.warn({ err: err.message }, 'PostgreSQL connection lost'));
    try {
      await migratePostgres(pool);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PostgresMetadataStore(pool, o.log);
  }

  /** A read: retried once on a fresh connection if the connection failed or its plan went stale. */
  private async read<R extends QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.pool.query<R>(prepared(text, values))).rows;
      } catch (err) {
        const stale = isStalePlan(err);
        if (!stale && !isConnectionError(err)) throw mapped(err); // a timeout is not tried again

        if (attempt >= 2) throw stale ? err : unavailable(err);
        this.log.warn({ err: (err as Error).message }, 'PostgreSQL read failed; retrying');
      }
    }
  }

  /**
   * One write statement; its rows changed (or returned). Not retried when the
   * connection failed (it may have committed); retried once when its plan
   * went stale (it did not run). The pool drops a connection whose query failed.
   */
  private async write<R extends QueryResultRow>(
    text: string,
    values: unknown[] = [],
  ): Promise<{ rowCount: number; rows: R[] }> {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.pool.query<R>(prepared(text, values));
        return { rowCount: res.rowCount ?? 0, rows: res.rows };
      } catch (err) {
        if (isStalePlan(err) && attempt < 2) continue;
        throw mapped(err);
      }
    }
  }

  /** `fn` in one transaction on one connection: all of it commits, or none. */
  private async transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    let held: Checkout;
    try {
      held = await checkout(this.pool, (err) =>
        this.log.warn({ err: err.message }, 'PostgreSQL connection lost in a transaction'),
      );
    } catch (err) {
      throw mapped(err);
    }
    const { client } = held;
    let broken = false;
    try {
      await client.query('BEGIN');
      const value = await fn(client);
      await client.query('COMMIT');
      return value;
    } catch (err) {
      broken = held.lost || isConnectionError(err);
      if (!broken) await client.query('ROLLBACK').catch(() => undefined);
      throw mapped(err);
    } finally {
      held.release(broken);
    }
  }

  async beginUpload(u: NewUpload): Promise<void> {
    await this.write(
      `INSERT INTO files (id, name, content_type, state, max_downloads, created_at, expires_at,
                          delete_token_hash, owner, processing, upload_link)
       VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10)`,
      [
        u.id,
        u.name,
        u.contentType,
        u.maxDownloads,
        u.createdAt,
        u.expiresAt,
        u.deleteTokenHash,
        u.owner,
        initialProcessing(u.contentType),
        u.uploadLink ?? null,
      ],
    );
  }

  async countLinkUploads(linkId: string): Promise<number> {
    const [row] = await this.read<{ n: number }>(
      `SELECT count(*) AS n FROM files WHERE upload_link = $1 AND state <> 'aborted'`,
      [linkId],
    );
    return row!.n;
  }

  /**
   * One file (every PUT, most forms): one statement, the row's commit and its
   * replica rows together, instead of BEGIN, UPDATE, INSERT and COMMIT on one
   * connection (four round trips). Several files: one transaction.
   */
  async commitUploads(files: CommitFile[]): Promise<void> {
    if (files.length === 1) return this.commitOne(files[0]!);
    await this.transaction(async (client) => {
      const now = Date.now();
      for (const f of files) {
        const res = await client.query(
          `UPDATE files SET state = 'committed', size = $2, sha256 = $3, max_downloads = $4, expires_at = $5
           WHERE id = $1 AND state = 'pending'`,
          [f.id, f.size, f.sha256, f.maxDownloads, f.expiresAt],
        );
        if (res.rowCount !== 1) throw new UploadAbortedError(f.id);
        await upsertReplicas(client, f.id, f.replicas, now);
      }
    });
  }

  private async commitOne(f: CommitFile): Promise<void> {
    const replicas = distinctReplicas(f.replicas);
    // The INSERT reads the UPDATE's RETURNING: no replica row unless the file was pending.
    const { rows } = await this.write<{ committed: number }>(
      `WITH c AS (
         UPDATE files SET state = 'committed', size = $2, sha256 = $3, max_downloads = $4, expires_at = $5
         WHERE id = $1 AND state = 'pending' RETURNING id
       ), r AS (
         INSERT INTO replicas (key, file_id, node, state, updated_at)
         SELECT x.key, c.id, x.node, x.state, $6
         FROM c, unnest($7::text[], $8::text[], $9::text[]) AS x(key, node, state)
         ON CONFLICT (key, node) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
       )
       SELECT count(*)::int AS committed FROM c`,
      [
        f.id,
        f.size,
        f.sha256,
        f.maxDownloads,
        f.expiresAt,
        Date.now(),
        replicas.map((r) => r.key),
        replicas.map((r) => r.node),
        replicas.map((r) => r.state),
      ],
    );
    if (rows[0]?.committed !== 1) throw new UploadAbortedError(f.id);
  }

  async abortUpload(id: string): Promise<boolean> {
    const res = await this.write(
      `UPDATE files SET state = 'aborted' WHERE id = $1 AND state IN ('pending', 'aborted')`,
      [id],
    );
    return res.rowCount === 1;
  }

  async forgetUpload(id: string): Promise<void> {
    await this.write(`DELETE FROM files WHERE id = $1 AND state IN ('pending', 'aborted')`, [id]);
  }

  async abandonedUploads(q: {
    owner: string;
    ownerSince: number;
    staleBefore: number;
    limit: number;
  }): Promise<FileRecord[]> {
    const rows = await this.read<FileRow>(
      `SELECT * FROM files WHERE state = 'aborted'
          OR (state = 'pending' AND ((owner = $1 AND created_at < $2) OR created_at < $3))
       ORDER BY created_at LIMIT $4`,
      [q.owner, q.ownerSince, q.staleBefore, q.limit],
    );
    return rows.map(toFile);
  }

  async getFile(id: string): Promise<FileRecord | undefined> {
    const [row] = await this.read<FileRow>(`SELECT * FROM files WHERE id = $1`, [id]);
    return row && toFile(row);
  }

  async replicasOf(fileId: string): Promise<ReplicaRecord[]> {
    const rows = await this.read<ReplicaRow>(
      `SELECT key, file_id, node, state, updated_at FROM replicas WHERE file_id = $1
       ORDER BY key, node`,
      [fileId],
    );
    return rows.map(toReplica);
  }

  async setReplicaState(
    key: string,
    node: string,
    state: ReplicaState,
    seen?: Pick<ReplicaRecord, 'state' | 'updatedAt'>,
  ): Promise<boolean> {
    const res = seen
      ? await this.write(
          `UPDATE replicas SET state = $1, updated_at = $2
           WHERE key = $3 AND node = $4 AND state = $5 AND updated_at = $6`,
          [state, Date.now(), key, node, seen.state, seen.updatedAt],
        )
      : await this.write(
          `UPDATE replicas SET state = $1, updated_at = $2 WHERE key = $3 AND node = $4`,
          [state, Date.now(), key, node],
        );
    return res.rowCount === 1;
  }

  async unhealthyReplicas(limit: number): Promise<ReplicaRecord[]> {
    const rows = await this.read<ReplicaRow>(
      `SELECT r.key, r.file_id, r.node, r.state, r.updated_at FROM replicas r JOIN files f ON f.id = r.file_id
       WHERE r.state <> 'ok' AND f.state = 'committed' AND f.deleted_at IS NULL
       ORDER BY r.updated_at LIMIT $1`,
      [limit],
    );
    return rows.map(toReplica);
  }

  async replicasOnNode(node: string): Promise<NodeReplica[]> {
    const rows = await this.read<ReplicaRow & { file_sha256: string; live: boolean }>(
      `SELECT r.key, r.file_id, r.node, r.state, r.updated_at, f.sha256 AS file_sha256,
              (f.state = 'committed' AND f.deleted_at IS NULL) AS live
       FROM replicas r JOIN files f ON f.id = r.file_id WHERE r.node = $1`,
      [node],
    );
    return rows.map((r) => ({ ...toReplica(r), fileSha256: r.file_sha256, live: r.live }));
  }

  async forgetReplica(key: string, node: string): Promise<void> {
    await this.write(`DELETE FROM replicas WHERE key = $1 AND node = $2`, [key, node]);
  }

  async variantsOf(fileId: string): Promise<VariantRecord[]> {
    const rows = await this.read<VariantRow>(
      `SELECT * FROM variants WHERE file_id = $1 ORDER BY variant`,
      [fileId],
    );
    return rows.map(toVariant);
  }

  async beginProcessing(fileId: string): Promise<number | null> {
    const { rows } = await this.write<{ processing_attempts: number }>(
      `UPDATE files SET processing_attempts = processing_attempts + 1
       WHERE id = $1 AND processing = 'pending' RETURNING processing_attempts`,
      [fileId],
    );
    return rows[0]?.processing_attempts ?? null;
  }

  async abandonProcessing(fileId: string): Promise<void> {
    await this.write(
      `UPDATE files SET processing_attempts = greatest(0, processing_attempts - 1) WHERE id = $1`,
      [fileId],
    );
  }

  completeProcessing(
    fileId: string,
    variants: Omit<VariantRecord, 'fileId'>[],
    replicas: Replicas,
  ): Promise<boolean> {
    return this.storeVariants(fileId, variants, replicas, true);
  }

  recordVariants(
    fileId: string,
    variants: Omit<VariantRecord, 'fileId'>[],
    replicas: Replicas,
  ): Promise<boolean> {
    return this.storeVariants(fileId, variants, replicas, false);
  }

  /** The variants and their replica rows in one transaction; `done` also ends processing. */
  private storeVariants(
    fileId: string,
    variants: Omit<VariantRecord, 'fileId'>[],
    replicas: Replicas,
    done: boolean,
  ): Promise<boolean> {
    return this.transaction(async (client) => {
      // Locks the row: a purge waits for this transaction, or has already removed the file.
      const file = await client.query(`SELECT 1 FROM files WHERE id = $1 FOR UPDATE`, [fileId]);
      if (file.rowCount === 0) return false;
      for (const v of variants) {
        await client.query(
          `INSERT INTO variants (file_id, variant, size, width, height, content_type, sha256, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (file_id, variant) DO UPDATE SET size = excluded.size, width = excluded.width,
             height = excluded.height, content_type = excluded.content_type, sha256 = excluded.sha256,
             created_at = excluded.created_at`,
          [fileId, v.variant, v.size, v.width, v.height, v.contentType, v.sha256, v.createdAt],
        );
      }
      await upsertReplicas(client, fileId, replicas, Date.now());
      // Not done yet: the attempt ends here, so it does not count as an interrupted one.
      await client.query(
        done
          ? `UPDATE files SET processing = 'done', processing_error = NULL, processing_attempts = 0 WHERE id = $1`
          : `UPDATE files SET processing_attempts = greatest(0, processing_attempts - 1) WHERE id = $1`,
        [fileId],
      );
      return true;
    });
  }

  async failProcessing(fileId: string, reason: string): Promise<void> {
    await this.write(
      `UPDATE files SET processing = 'failed', processing_error = $1, processing_attempts = 0
       WHERE id = $2 AND processing = 'pending'`,
      [reason, fileId],
    );
  }

  async pendingProcessing(createdBefore: number, limit: number): Promise<FileRecord[]> {
    const rows = await this.read<FileRow>(
      `SELECT * FROM files WHERE processing = 'pending' AND state = 'committed' AND deleted_at IS NULL
         AND created_at < $1 ORDER BY created_at LIMIT $2`,
      [createdBefore, limit],
    );
    return rows.map(toFile);
  }

  /**
   * One statement: the row is locked (FOR UPDATE) while the count before the
   * batch is read and the new one written, so concurrent batches from any
   * number of gateways apply one after the other.
   */
  async grantDownloads(
    id: string,
    takes: number,
    returns: number,
  ): Promise<{ before: number; after: number } | undefined> {
    const { rows } = await this.write<{ before: number; after: number }>(
      `WITH cur AS (
         SELECT id, downloads_used AS before, greatest(0, downloads_used - $3) AS base, max_downloads
         FROM files WHERE id = $1 FOR UPDATE
       )
       UPDATE files f SET downloads_used = cur.base + least($2, greatest(0, cur.max_downloads - cur.base))
       FROM cur WHERE f.id = cur.id
       RETURNING cur.before, f.downloads_used AS after`,
      [id, takes, returns],
    );
    return rows[0];
  }

  async markDeleted(id: string, reason: DeleteReason, at: number): Promise<boolean> {
    const res = await this.write(
      `UPDATE files SET deleted_at = $1, delete_reason = $2
       WHERE id = $3 AND state = 'committed' AND deleted_at IS NULL`,
      [at, reason, id],
    );
    return res.rowCount === 1;
  }

  async expiredLiveFiles(now: number, limit: number): Promise<FileRecord[]> {
    const rows = await this.read<FileRow>(
      `SELECT * FROM files WHERE state = 'committed' AND deleted_at IS NULL AND expires_at <= $1
       ORDER BY expires_at LIMIT $2`,
      [now, limit],
    );
    return rows.map(toFile);
  }

  async tombstonesWithBlobs(deletedBefore: number, limit: number): Promise<FileRecord[]> {
    const rows = await this.read<FileRow>(
      `SELECT * FROM files f WHERE deleted_at IS NOT NULL AND deleted_at <= $1
         AND EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = f.id)
       ORDER BY deleted_at LIMIT $2`,
      [deletedBefore, limit],
    );
    return rows.map(toFile);
  }

  async purgeTombstones(deletedBefore: number): Promise<number> {
    const res = await this.write(
      `DELETE FROM files WHERE deleted_at IS NOT NULL AND deleted_at < $1`,
      [deletedBefore],
    );
    return res.rowCount;
  }

  async counts(copies: number): Promise<{ objects: number; underReplicated: number }> {
    const [row] = await this.read<{ objects: number; under: number }>(
      `SELECT count(*) AS objects,
              count(*) FILTER (WHERE (SELECT count(*) FROM replicas r
                                      WHERE r.file_id = f.id AND r.key = f.id AND r.state = 'ok') < $1) AS under
       FROM files f WHERE f.state = 'committed' AND f.deleted_at IS NULL`,
      [copies],
    );
    return { objects: row!.objects, underReplicated: row!.under };
  }

  async listFiles(q: FileListQuery): Promise<FileRecord[]> {
    const values: (number | string)[] = [];
    const sql = listFilesSql(q, (value) => {
      values.push(value);
      return `$${values.length}`;
    });
    const rows = await this.read<FileRow>(sql, values);
    return rows.map(toFile);
  }

  async currentLayout(): Promise<Layout | undefined> {
    const [row] = await this.layoutRows(1);
    return row && toLayout(row);
  }

  /**
   * One statement: inserted only when `version` is the newest + 1 as this
   * statement sees it. Two savers of the same version both see the same
   * newest one; the second's insert waits on the first's key and, once that
   * commits, does nothing (ON CONFLICT), so exactly one of them inserts.
   */
  async saveLayout(layout: Layout): Promise<boolean> {
    const r = layoutRow(layout);
    const res = await this.write(
      `INSERT INTO layouts (version, created_at, nodes, note)
       SELECT $1::integer, $2::bigint, $3::text, $4::text
       WHERE $1::integer = (SELECT coalesce(max(version), 0) + 1 FROM layouts)
       ON CONFLICT (version) DO NOTHING`,
      [r.version, r.created_at, r.nodes, r.note],
    );
    return res.rowCount === 1;
  }

  async layoutHistory(limit: number): Promise<Layout[]> {
    return (await this.layoutRows(limit)).map(toLayout);
  }

  private layoutRows(limit: number): Promise<LayoutRow[]> {
    return this.read<LayoutRow>(
      `SELECT version, created_at, nodes, note FROM layouts ORDER BY version DESC LIMIT $1`,
      [limit],
    );
  }

  async replicaCountOnNode(node: string): Promise<number> {
    const [row] = await this.read<{ n: number }>(
      `SELECT count(*) AS n FROM replicas WHERE node = $1`,
      [node],
    );
    return row!.n;
  }

  /**
   * One statement. The file row is read FOR SHARE: a concurrent markDeleted
   * waits for this insert (the tombstone then owns the row, and its deletion
   * removes the copy), or has committed and the file is no longer live here.
   * An existing row of the file is "updated" to itself, so RETURNING answers
   * for it too (also when another connection inserted it a moment ago) and
   * nothing in it changes.
   */
  async addReplica(
    fileId: string,
    key: string,
    node: string,
    state: ReplicaState,
  ): Promise<boolean> {
    const res = await this.write(
      `WITH f AS (
         SELECT id FROM files WHERE id = $1 AND state = 'committed' AND deleted_at IS NULL FOR SHARE
       )
       INSERT INTO replicas (key, file_id, node, state, updated_at)
       SELECT $2, f.id, $3, $4, $5 FROM f
       ON CONFLICT (key, node) DO UPDATE SET state = replicas.state
         WHERE replicas.file_id = excluded.file_id
       RETURNING 1`,
      [fileId, key, node, state, Date.now()],
    );
    return res.rowCount === 1;
  }

  /**
   * Three reads, not one snapshot: a file may change between the page and
   * its rows (a replica added, the file deleted). The rebalance only compares
   * with it, and each of its writes is conditional (addReplica), so a page a
   * moment stale costs at most a step done again on the next pass.
   */
  async placementPage(afterId: string | undefined, limit: number): Promise<PlacedFile[]> {
    const files = await this.read<PlacementFileRow>(PLACEMENT.files, [afterId ?? '', limit]);
    if (files.length === 0) return [];
    const ids = files.map((f) => f.id);
    const variants = await this.read<PlacementVariantRow>(PLACEMENT.variants, [ids]);
    const replicas = await this.read<ReplicaRow>(PLACEMENT.replicas, [ids]);
    return toPlacedFiles(files, variants, replicas);
  }

  async createResumable(u: NewResumable): Promise<void> {
    await this.write(
      `INSERT INTO resumable_uploads (id, file_id, name, upload_length, max_downloads, ttl_seconds,
                                      metadata, client, upload_link, created_at, expires_at, state,
                                      s3_bucket, s3_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'uploading', $12, $13)`,
      [
        u.id,
        u.fileId,
        u.name,
        u.length,
        u.maxDownloads,
        u.ttlSeconds,
        JSON.stringify(u.metadata),
        u.client,
        u.uploadLink,
        u.createdAt,
        u.expiresAt,
        u.s3?.bucket ?? null,
        u.s3?.key ?? null,
      ],
    );
  }

  async getResumable(id: string): Promise<ResumableUpload | undefined> {
    const [row] = await this.read<ResumableRow>(`SELECT * FROM resumable_uploads WHERE id = $1`, [
      id,
    ]);
    return row && toResumable(row);
  }

  async partsOf(uploadId: string): Promise<UploadPart[]> {
    const rows = await this.read<PartRow>(
      `SELECT * FROM upload_parts WHERE upload_id = $1 ORDER BY part_offset, created_at, key`,
      [uploadId],
    );
    return rows.map(toPart);
  }

  async getPart(key: string): Promise<UploadPart | undefined> {
    const [row] = await this.read<PartRow>(`SELECT * FROM upload_parts WHERE key = $1`, [key]);
    return row && toPart(row);
  }

  async resumableUsage(client: string, now: number): Promise<{ uploads: number; bytes: number }> {
    // sum(bigint) is numeric, which pg returns as a string: cast back to bigint (a number here).
    const [row] = await this.read<{ uploads: number; bytes: number }>(
      `SELECT count(*) AS uploads,
              coalesce(sum(coalesce(upload_length, upload_offset)), 0)::bigint AS bytes
       FROM resumable_uploads WHERE client = $1 AND state = 'uploading' AND expires_at > $2`,
      [client, now],
    );
    return { uploads: row!.uploads, bytes: row!.bytes };
  }

  async declareResumableLength(id: string, length: number): Promise<boolean> {
    const res = await this.write(
      `UPDATE resumable_uploads SET upload_length = $2
       WHERE id = $1 AND state = 'uploading' AND upload_length IS NULL`,
      [id, length],
    );
    return res.rowCount === 1;
  }

  async beginPart(part: Parameters<MetadataStore['beginPart']>[0]): Promise<void> {
    await this.write(
      `INSERT INTO upload_parts (key, upload_id, part_offset, nodes, stored, created_at, part_number)
       VALUES ($1, $2, $3, $4, false, $5, $6)`,
      [
        part.key,
        part.uploadId,
        part.offset,
        JSON.stringify(part.nodes),
        part.createdAt,
        part.partNumber ?? null,
      ],
    );
  }

  /**
   * One transaction that locks the upload row first: a second request for
   * the same offset waits for the first, then finds the offset moved and
   * changes nothing. Upload row, then part row: the order in which
   * forgetResumable's delete takes them too, so the two never deadlock.
   * NO KEY UPDATE, the lock the offset's UPDATE takes anyway: it leaves
   * beginPart's inserts (which share-lock the key) free to go on.
   */
  storePart(part: Parameters<MetadataStore['storePart']>[0]): Promise<boolean> {
    return this.transaction(async (client) => {
      const upload = await client.query(
        `SELECT 1 FROM resumable_uploads
         WHERE id = $1 AND state = 'uploading' AND upload_offset = $2 FOR NO KEY UPDATE`,
        [part.uploadId, part.offset],
      );
      if (upload.rowCount === 0) return false;
      const stored = await client.query(
        `UPDATE upload_parts SET size = $4, sha256 = $5, nodes = $6, stored = true
         WHERE key = $1 AND upload_id = $2 AND part_offset = $3 AND NOT stored`,
        [part.key, part.uploadId, part.offset, part.size, part.sha256, JSON.stringify(part.nodes)],
      );
      if (stored.rowCount === 0) return false;
      await client.query(
        `UPDATE resumable_uploads SET upload_offset = upload_offset + $2,
           content_type = coalesce(content_type, $3)
         WHERE id = $1`,
        [part.uploadId, part.size, part.contentType ?? null],
      );
      return true;
    });
  }

  async forgetPart(key: string): Promise<void> {
    await this.write(`DELETE FROM upload_parts WHERE key = $1`, [key]);
  }

  async endResumable(id: string, state: 'done' | 'terminated'): Promise<boolean> {
    const res = await this.write(
      `UPDATE resumable_uploads SET state = $2 WHERE id = $1 AND state = 'uploading'`,
      [id, state],
    );
    return res.rowCount === 1;
  }

  async staleResumables(now: number, limit: number): Promise<ResumableUpload[]> {
    const rows = await this.read<ResumableRow>(
      `SELECT * FROM resumable_uploads WHERE state = 'terminated' OR expires_at <= $1
            OR (state = 'done' AND EXISTS (SELECT 1 FROM upload_parts p WHERE p.upload_id = resumable_uploads.id))
       ORDER BY created_at, id LIMIT $2`,
      [now, limit],
    );
    return rows.map(toResumable);
  }

  async forgetResumable(id: string): Promise<void> {
    // Its part rows go with it (ON DELETE CASCADE).
    await this.write(`DELETE FROM resumable_uploads WHERE id = $1`, [id]);
  }

  async ping(): Promise<boolean> {
    try {
      await this.pool.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** One row per key and node (a row given twice: the last one counts); ON CONFLICT may touch a row only once. */
function distinctReplicas(given: Replicas): Replicas {
  return [...new Map(given.map((r) => [`${r.key}\n${r.node}`, r])).values()];
}

/** Upserts a file's replica rows in one statement. */
async function upsertReplicas(
  client: PoolClient,
  fileId: string,
  given: Replicas,
  now: number,
): Promise<void> {
  const replicas = distinctReplicas(given);
  if (replicas.length === 0) return;
  await client.query(
    `INSERT INTO replicas (key, file_id, node, state, updated_at)
     SELECT r.key, $1, r.node, r.state, $2
     FROM unnest($3::text[], $4::text[], $5::text[]) AS r(key, node, state)
     ON CONFLICT (key, node) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
    [
      fileId,
      now,
      replicas.map((r) => r.key),
      replicas.map((r) => r.node),
      replicas.map((r) => r.state),
    ],
  );
}

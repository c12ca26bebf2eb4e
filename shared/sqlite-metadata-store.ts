/**
 * MetadataStore on SQLite (better-sqlite3) in WAL mode, so several gateway
 * processes on one host can share the file. The schema is versioned with
 * `PRAGMA user_version`; each migration runs once, in a transaction.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { UploadAbortedError } from './errors.js';
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
import { SqliteS3Store } from './sqlite-s3-store.js';

/** Append only: a shipped migration is never edited, the next change is a new entry. */
const MIGRATIONS: string[] = [
  `CREATE TABLE files (
     id                TEXT PRIMARY KEY,
     name              TEXT NOT NULL,
     size              INTEGER NOT NULL DEFAULT 0,
     content_type      TEXT NOT NULL,
     sha256            TEXT NOT NULL DEFAULT '',
     state             TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'aborted')),
     max_downloads     INTEGER NOT NULL,
     downloads_used    INTEGER NOT NULL DEFAULT 0,
     created_at        INTEGER NOT NULL,
     expires_at        INTEGER NOT NULL,
     delete_token_hash TEXT NOT NULL,
     owner             TEXT NOT NULL
   ) STRICT;
   CREATE INDEX files_by_state ON files (state, created_at);
   CREATE TABLE replicas (
     key        TEXT NOT NULL,
     file_id    TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
     node       TEXT NOT NULL,
     state      TEXT NOT NULL CHECK (state IN ('ok', 'missing', 'corrupt')),
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (key, node)
   ) STRICT;
   CREATE INDEX replicas_by_file ON replicas (file_id);`,
  // 2: tombstones (expiry and owner deletion).
  `ALTER TABLE files ADD COLUMN deleted_at INTEGER;
   ALTER TABLE files ADD COLUMN delete_reason TEXT CHECK (delete_reason IN ('expired', 'deleted'));
   CREATE INDEX files_live_by_expiry ON files (expires_at)
     WHERE state = 'committed' AND deleted_at IS NULL;
   CREATE INDEX files_tombstones ON files (deleted_at) WHERE deleted_at IS NOT NULL;`,
  // 3: image processing: its state per file, and the variants it made. Files from before
  // become pending (images) or skipped, so the worker's sweep processes them too.
  `ALTER TABLE files ADD COLUMN processing TEXT NOT NULL DEFAULT 'skipped'
     CHECK (processing IN ('pending', 'done', 'failed', 'skipped'));
   ALTER TABLE files ADD COLUMN processing_error TEXT;
   ALTER TABLE files ADD COLUMN processing_attempts INTEGER NOT NULL DEFAULT 0;
   UPDATE files SET processing = 'pending' WHERE content_type LIKE 'image/%';
   CREATE INDEX files_processing_pending ON files (created_at)
     WHERE processing = 'pending' AND state = 'committed' AND deleted_at IS NULL;
   CREATE TABLE variants (
     file_id      TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
     variant      TEXT NOT NULL,
     size         INTEGER NOT NULL,
     width        INTEGER NOT NULL,
     height       INTEGER NOT NULL,
     content_type TEXT NOT NULL,
     sha256       TEXT NOT NULL,
     created_at   INTEGER NOT NULL,
     PRIMARY KEY (file_id, variant)
   ) STRICT;`,
  // 4: the admin API's file listing, newest first, paged by (created_at, id).
  `CREATE INDEX files_by_created ON files (created_at, id);`,
  // 5: the upload link a file came through, so a link's file count survives Redis losing it.
  `ALTER TABLE files ADD COLUMN upload_link TEXT;
   CREATE INDEX files_by_upload_link ON files (upload_link) WHERE upload_link IS NOT NULL;`,
  // 6: the cluster layout, one row per version (never updated); replica rows by node, which
  // `cluster remove` counts and anti-entropy lists.
  `CREATE TABLE layouts (
     version    INTEGER PRIMARY KEY CHECK (version >= 1),
     created_at INTEGER NOT NULL,
     nodes      TEXT NOT NULL,
     note       TEXT NOT NULL
   ) STRICT;
   CREATE INDEX replicas_by_node ON replicas (node);`,
  // 7: resumable (tus) uploads and their parts, each part a blob of its own until the last one
  // lands and they are composed into the file. The offset and length columns are named as tus
  // names them: OFFSET is a reserved word in PostgreSQL, and the two schemas keep one set of names.
  `CREATE TABLE resumable_uploads (
     id            TEXT PRIMARY KEY,
     file_id       TEXT NOT NULL UNIQUE,
     name          TEXT NOT NULL,
     content_type  TEXT,
     upload_length INTEGER,
     upload_offset INTEGER NOT NULL DEFAULT 0,
     max_downloads INTEGER NOT NULL,
     ttl_seconds   INTEGER NOT NULL,
     metadata      TEXT NOT NULL,
     client        TEXT NOT NULL,
     upload_link   TEXT,
     created_at    INTEGER NOT NULL,
     expires_at    INTEGER NOT NULL,
     state         TEXT NOT NULL CHECK (state IN ('uploading', 'done', 'terminated'))
   ) STRICT;
   CREATE INDEX resumable_by_client ON resumable_uploads (client, state);
   CREATE INDEX resumable_by_state ON resumable_uploads (state, expires_at);
   CREATE TABLE upload_parts (
     key         TEXT PRIMARY KEY,
     upload_id   TEXT NOT NULL REFERENCES resumable_uploads (id) ON DELETE CASCADE,
     part_offset INTEGER NOT NULL,
     size        INTEGER,
     sha256      TEXT,
     nodes       TEXT NOT NULL,
     stored      INTEGER NOT NULL DEFAULT 0 CHECK (stored IN (0, 1)),
     created_at  INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX upload_parts_by_upload ON upload_parts (upload_id, part_offset);`,
  // 8: the S3 API (shared/s3-metadata.ts): access keys (secrets sealed, never plain), buckets,
  // objects naming files, and S3 multipart uploads as resumable uploads with a bucket and key
  // whose parts have numbers. An object row goes when its file is purged (CASCADE); a bucket
  // cannot go while a row names it (no CASCADE: deleteBucket's emptiness check relies on it).
  `CREATE TABLE s3_access_keys (
     id            TEXT PRIMARY KEY,
     name          TEXT NOT NULL,
     sealed_secret TEXT,
     created_at    INTEGER NOT NULL,
     revoked_at    INTEGER
   ) STRICT;
   CREATE TABLE s3_buckets (
     name                  TEXT PRIMARY KEY,
     owner                 TEXT NOT NULL,
     created_at            INTEGER NOT NULL,
     default_max_downloads INTEGER,
     default_ttl_seconds   INTEGER
   ) STRICT;
   CREATE INDEX s3_buckets_by_owner ON s3_buckets (owner, name);
   CREATE TABLE s3_objects (
     bucket        TEXT NOT NULL REFERENCES s3_buckets (name),
     key           TEXT NOT NULL,
     file_id       TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
     etag          TEXT NOT NULL,
     size          INTEGER NOT NULL,
     content_type  TEXT NOT NULL,
     last_modified INTEGER NOT NULL,
     user_metadata TEXT NOT NULL,
     md5           TEXT,
     PRIMARY KEY (bucket, key)
   ) STRICT;
   CREATE INDEX s3_objects_by_file ON s3_objects (file_id);
   ALTER TABLE resumable_uploads ADD COLUMN s3_bucket TEXT;
   ALTER TABLE resumable_uploads ADD COLUMN s3_key TEXT;
   CREATE INDEX resumable_by_s3_key ON resumable_uploads (s3_bucket, s3_key, created_at)
     WHERE s3_bucket IS NOT NULL;
   ALTER TABLE upload_parts ADD COLUMN part_number INTEGER;
   ALTER TABLE upload_parts ADD COLUMN md5 TEXT;
   CREATE INDEX upload_parts_by_number ON upload_parts (upload_id, part_number)
     WHERE part_number IS NOT NULL;`,
];

/** The `user_version` of a store that every migration has reached. */
export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

export function openDatabase(path: string): Database.Database {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // NORMAL by default: bookkeeping (pending rows, replica states) survives a process crash, and
  // what a power cut loses of it is rebuilt or swept; commits that a 201 promises use FULL (durably()).
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

export function migrate(db: Database.Database): void {
  // One step per write transaction, the version read inside it: processes that start together
  // (gateways and workers in docker compose) take turns instead of running a step twice.
  const step = db.transaction((): boolean => {
    const v = db.pragma('user_version', { simple: true }) as number;
    if (v >= MIGRATIONS.length) return false;
    db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${v + 1}`);
    return true;
  });
  while (step.immediate()) {
    // next step
  }
}

/** A piece of work waiting for the next group commit. */
interface DurableWork {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class SqliteMetadataStore implements MetadataStore {
  private readonly stmts;
  private readonly savepoint;
  private readonly processing;
  private readonly layouts;
  private readonly placement;
  private readonly readPage;
  private readonly completeTx;
  private readonly resumable;
  private readonly storePartTx;
  private durableQueue: DurableWork[] = [];
  /** Prepared once: db.pragma() prepares its statement anew on every call, twice per commit. */
  private readonly syncMode;
  private readonly listStatements = new Map<string, Database.Statement>();
  /** The S3 tables' methods (sqlite-s3-store.ts), as `store.s3`. */
  readonly s3: SqliteS3Store;

  constructor(private readonly db: Database.Database) {
    this.s3 = new SqliteS3Store(db);
    this.syncMode = {
      full: db.prepare('PRAGMA synchronous = FULL'),
      normal: db.prepare('PRAGMA synchronous = NORMAL'),
    };
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO files (id, name, content_type, state, max_downloads, created_at, expires_at, delete_token_hash, owner, processing, upload_link)
         VALUES (@id, @name, @contentType, 'pending', @maxDownloads, @createdAt, @expiresAt, @deleteTokenHash, @owner, @processing, @uploadLink)`,
      ),
      countLinkUploads: db.prepare(
        `SELECT COUNT(*) AS n FROM files WHERE upload_link = ? AND state != 'aborted'`,
      ),
      commit: db.prepare(
        `UPDATE files SET state = 'committed', size = @size, sha256 = @sha256, max_downloads = @maxDownloads, expires_at = @expiresAt
         WHERE id = @id AND state = 'pending'`,
      ),
      upsertReplica: db.prepare(
        `INSERT INTO replicas (key, file_id, node, state, updated_at) VALUES (@key, @fileId, @node, @state, @now)
         ON CONFLICT (key, node) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
      ),
      setReplica: db.prepare(
        `UPDATE replicas SET state = ?, updated_at = ? WHERE key = ? AND node = ?`,
      ),
      setReplicaIfSeen: db.prepare(
        `UPDATE replicas SET state = ?, updated_at = ? WHERE key = ? AND node = ? AND state = ? AND updated_at = ?`,
      ),
      abort: db.prepare(
        `UPDATE files SET state = 'aborted' WHERE id = ? AND state IN ('pending', 'aborted')`,
      ),
      forget: db.prepare(`DELETE FROM files WHERE id = ? AND state IN ('pending', 'aborted')`),
      abandoned: db.prepare(
        `SELECT * FROM files WHERE state = 'aborted'
            OR (state = 'pending' AND ((owner = @owner AND created_at < @ownerSince) OR created_at < @staleBefore))
         ORDER BY created_at LIMIT @limit`,
      ),
      get: db.prepare(`SELECT * FROM files WHERE id = ?`),
      replicas: db.prepare(
        `SELECT key, file_id, node, state, updated_at FROM replicas WHERE file_id = ? ORDER BY key, node`,
      ),
      unhealthy: db.prepare(
        `SELECT r.key, r.file_id, r.node, r.state, r.updated_at FROM replicas r JOIN files f ON f.id = r.file_id
         WHERE r.state != 'ok' AND f.state = 'committed' AND f.deleted_at IS NULL
         ORDER BY r.updated_at LIMIT ?`,
      ),
      onNode: db.prepare(
        `SELECT r.key, r.file_id, r.node, r.state, r.updated_at, f.sha256 AS file_sha256,
                (f.state = 'committed' AND f.deleted_at IS NULL) AS live
         FROM replicas r JOIN files f ON f.id = r.file_id WHERE r.node = ?`,
      ),
      forgetReplica: db.prepare(`DELETE FROM replicas WHERE key = ? AND node = ?`),
      used: db.prepare(
        `SELECT downloads_used AS used, max_downloads AS max FROM files WHERE id = ?`,
      ),
      setUsed: db.prepare(`UPDATE files SET downloads_used = ? WHERE id = ?`),
      markDeleted: db.prepare(
        `UPDATE files SET deleted_at = ?, delete_reason = ?
         WHERE id = ? AND state = 'committed' AND deleted_at IS NULL`,
      ),
      expiredLive: db.prepare(
        `SELECT * FROM files WHERE state = 'committed' AND deleted_at IS NULL AND expires_at <= ?
         ORDER BY expires_at LIMIT ?`,
      ),
      tombstonesWithBlobs: db.prepare(
        `SELECT * FROM files f WHERE deleted_at IS NOT NULL AND deleted_at <= ?
           AND EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = f.id)
         ORDER BY deleted_at LIMIT ?`,
      ),
      purgeTombstones: db.prepare(
        `DELETE FROM files WHERE deleted_at IS NOT NULL AND deleted_at < ?`,
      ),
      objects: db.prepare(
        `SELECT count(*) AS n FROM files WHERE state = 'committed' AND deleted_at IS NULL`,
      ),
      under: db.prepare(
        `SELECT count(*) AS n FROM files f WHERE f.state = 'committed' AND f.deleted_at IS NULL AND
           (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.key = f.id AND r.state = 'ok') < ?`,
      ),
    };
    this.processing = {
      variants: db.prepare(`SELECT * FROM variants WHERE file_id = ? ORDER BY variant`),
      begin: db.prepare(
        `UPDATE files SET processing_attempts = processing_attempts + 1
         WHERE id = ? AND processing = 'pending' RETURNING processing_attempts`,
      ),
      abandon: db.prepare(
        `UPDATE files SET processing_attempts = max(0, processing_attempts - 1) WHERE id = ?`,
      ),
      upsertVariant: db.prepare(
        `INSERT INTO variants (file_id, variant, size, width, height, content_type, sha256, created_at)
         VALUES (@fileId, @variant, @size, @width, @height, @contentType, @sha256, @createdAt)
         ON CONFLICT (file_id, variant) DO UPDATE SET size = excluded.size, width = excluded.width,
           height = excluded.height, content_type = excluded.content_type, sha256 = excluded.sha256,
           created_at = excluded.created_at`,
      ),
      done: db.prepare(
        `UPDATE files SET processing = 'done', processing_error = NULL, processing_attempts = 0
         WHERE id = ?`,
      ),
      fail: db.prepare(
        `UPDATE files SET processing = 'failed', processing_error = ?, processing_attempts = 0
         WHERE id = ? AND processing = 'pending'`,
      ),
      pending: db.prepare(
        `SELECT * FROM files WHERE processing = 'pending' AND state = 'committed' AND deleted_at IS NULL
           AND created_at < ? ORDER BY created_at LIMIT ?`,
      ),
    };
    this.layouts = {
      newest: db.prepare(`SELECT * FROM layouts ORDER BY version DESC LIMIT ?`),
      // The next version or nothing: the check and the insert are one statement, under SQLite's
      // one writer, so of two savers of the same version exactly one inserts.
      save: db.prepare(
        `INSERT INTO layouts (version, created_at, nodes, note)
         SELECT @version, @created_at, @nodes, @note
         WHERE @version = (SELECT coalesce(max(version), 0) + 1 FROM layouts)
         ON CONFLICT (version) DO NOTHING`,
      ),
    };
    const page = placementSql({
      afterId: '@afterId',
      limit: '@limit',
      ids: '(SELECT value FROM json_each(@ids))',
    });
    this.placement = {
      files: db.prepare(page.files),
      variants: db.prepare(page.variants),
      replicas: db.prepare(page.replicas),
      countOnNode: db.prepare(`SELECT count(*) AS n FROM replicas WHERE node = ?`),
      // Inserted only for a live committed file; an existing row of that file is "updated" to
      // itself, so RETURNING answers for it too and nothing in it changes.
      addReplica: db.prepare(
        `INSERT INTO replicas (key, file_id, node, state, updated_at)
         SELECT @key, id, @node, @state, @now FROM files
         WHERE id = @fileId AND state = 'committed' AND deleted_at IS NULL
         ON CONFLICT (key, node) DO UPDATE SET state = replicas.state
           WHERE replicas.file_id = excluded.file_id
         RETURNING 1 AS added`,
      ),
    };
    // One read transaction: the page's files, variants and rows come from one snapshot.
    this.readPage = db.transaction((afterId: string, limit: number): PlacedFile[] => {
      const files = this.placement.files.all({ afterId, limit }) as PlacementFileRow[];
      if (files.length === 0) return [];
      const ids = JSON.stringify(files.map((f) => f.id));
      return toPlacedFiles(
        files,
        this.placement.variants.all({ ids }) as PlacementVariantRow[],
        this.placement.replicas.all({ ids }) as ReplicaRow[],
      );
    });
    this.completeTx = db.transaction(
      (
        fileId: string,
        variants: Omit<VariantRecord, 'fileId'>[],
        replicas: { key: string; node: string; state: ReplicaState }[],
        done: boolean,
      ): boolean => {
        if (!this.stmts.get.get(fileId)) return false;
        const now = Date.now();
        for (const v of variants) this.processing.upsertVariant.run({ ...v, fileId });
        for (const r of replicas) this.stmts.upsertReplica.run({ ...r, fileId, now });
        // Not done yet: the attempt ends here, so it does not count as an interrupted one.
        if (done) this.processing.done.run(fileId);
        else this.processing.abandon.run(fileId);
        return true;
      },
    );
    this.resumable = {
      insert: db.prepare(
        `INSERT INTO resumable_uploads (id, file_id, name, upload_length, max_downloads, ttl_seconds,
                                        metadata, client, upload_link, created_at, expires_at, state,
                                        s3_bucket, s3_key)
         VALUES (@id, @fileId, @name, @length, @maxDownloads, @ttlSeconds,
                 @metadata, @client, @uploadLink, @createdAt, @expiresAt, 'uploading',
                 @s3Bucket, @s3Key)`,
      ),
      get: db.prepare(`SELECT * FROM resumable_uploads WHERE id = ?`),
      parts: db.prepare(
        `SELECT * FROM upload_parts WHERE upload_id = ? ORDER BY part_offset, created_at, key`,
      ),
      part: db.prepare(`SELECT * FROM upload_parts WHERE key = ?`),
      usage: db.prepare(
        `SELECT count(*) AS uploads, coalesce(sum(coalesce(upload_length, upload_offset)), 0) AS bytes
         FROM resumable_uploads WHERE client = ? AND state = 'uploading' AND expires_at > ?`,
      ),
      declareLength: db.prepare(
        `UPDATE resumable_uploads SET upload_length = ?
         WHERE id = ? AND state = 'uploading' AND upload_length IS NULL`,
      ),
      beginPart: db.prepare(
        `INSERT INTO upload_parts (key, upload_id, part_offset, nodes, stored, created_at, part_number)
         VALUES (@key, @uploadId, @offset, @nodes, 0, @createdAt, @partNumber)`,
      ),
      uploadingAt: db.prepare(
        `SELECT 1 FROM resumable_uploads WHERE id = ? AND state = 'uploading' AND upload_offset = ?`,
      ),
      storePart: db.prepare(
        `UPDATE upload_parts SET size = @size, sha256 = @sha256, nodes = @nodes, stored = 1
         WHERE key = @key AND upload_id = @uploadId AND part_offset = @offset AND stored = 0`,
      ),
      advance: db.prepare(
        `UPDATE resumable_uploads SET upload_offset = upload_offset + @size,
           content_type = coalesce(content_type, @contentType)
         WHERE id = @uploadId`,
      ),
      forgetPart: db.prepare(`DELETE FROM upload_parts WHERE key = ?`),
      end: db.prepare(
        `UPDATE resumable_uploads SET state = ? WHERE id = ? AND state = 'uploading'`,
      ),
      stale: db.prepare(
        `SELECT * FROM resumable_uploads WHERE state = 'terminated' OR expires_at <= ?
            OR (state = 'done' AND EXISTS (SELECT 1 FROM upload_parts p WHERE p.upload_id = resumable_uploads.id))
         ORDER BY created_at, id LIMIT ?`,
      ),
      forget: db.prepare(`DELETE FROM resumable_uploads WHERE id = ?`),
    };
    // Checked and written under one write lock (run .immediate()): a request whose offset went
    // stale meanwhile changes nothing.
    this.storePartTx = db.transaction((p: Parameters<MetadataStore['storePart']>[0]): boolean => {
      if (!this.resumable.uploadingAt.get(p.uploadId, p.offset)) return false;
      const row = { ...p, nodes: JSON.stringify(p.nodes), contentType: p.contentType ?? null };
      if (this.resumable.storePart.run(row).changes !== 1) return false;
      this.resumable.advance.run(row);
      return true;
    });
    // Called inside a transaction, better-sqlite3 makes this a savepoint: rolled back alone if it throws.
    this.savepoint = db.transaction((work: () => unknown) => work());
  }

  async beginUpload(u: NewUpload): Promise<void> {
    this.stmts.insert.run({
      ...u,
      processing: initialProcessing(u.contentType),
      uploadLink: u.uploadLink ?? null,
    });
  }

  async countLinkUploads(linkId: string): Promise<number> {
    return (this.stmts.countLinkUploads.get(linkId) as { n: number }).n;
  }

  commitUploads(files: CommitFile[]): Promise<void> {
    return this.groupDurably(() => {
      const now = Date.now();
      for (const f of files) {
        const changed = this.stmts.commit.run(f).changes;
        if (changed !== 1) throw new UploadAbortedError(f.id);
        for (const r of f.replicas) this.stmts.upsertReplica.run({ ...r, fileId: f.id, now });
      }
    });
  }

  /**
   * Group commit: writes asked for in the same turn of the event loop share
   * one transaction and one fsync (better-sqlite3 blocks the loop for it).
   * Each keeps its own all-or-none savepoint inside, and its own outcome.
   */
  private groupDurably<T>(work: () => T): Promise<T> {
    return new Promise((resolve, reject) => {
      this.durableQueue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (this.durableQueue.length === 1) setImmediate(() => this.flushDurable());
    });
  }

  private flushDurable(): void {
    const batch = this.durableQueue;
    this.durableQueue = [];
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      this.durably(() => {
        for (const item of batch) {
          try {
            outcomes.push({ ok: true, value: this.savepoint(item.work) });
          } catch (err) {
            outcomes.push({ ok: false, err });
          }
        }
      });
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.err);
    });
  }

  /**
   * Runs `fn` in an IMMEDIATE transaction without an fsync of its own. For
   * processing records: one lost to a power cut leaves the image `pending`,
   * and the sweep has it made again (the same bytes under the same keys), so
   * the worker's event loop need not wait for the disk on each variant.
   */
  private immediately(fn: () => void): void {
    this.db.transaction(fn).immediate();
  }

  /** Runs `fn` in a transaction whose commit is fsynced (synchronous = FULL). */
  private durably(fn: () => void): void {
    this.syncMode.full.run();
    try {
      // IMMEDIATE: a read-then-write transaction that starts deferred fails at once with
      // SQLITE_BUSY_SNAPSHOT when another process commits in between; this one waits its turn.
      this.db.transaction(fn).immediate();
    } finally {
      this.syncMode.normal.run();
    }
  }

  async abortUpload(id: string): Promise<boolean> {
    return this.stmts.abort.run(id).changes === 1;
  }

  async forgetUpload(id: string): Promise<void> {
    this.stmts.forget.run(id);
  }

  async abandonedUploads(q: {
    owner: string;
    ownerSince: number;
    staleBefore: number;
    limit: number;
  }) {
    return (this.stmts.abandoned.all(q) as FileRow[]).map(toFile);
  }

  async getFile(id: string): Promise<FileRecord | undefined> {
    const row = this.stmts.get.get(id) as FileRow | undefined;
    return row && toFile(row);
  }

  async replicasOf(fileId: string): Promise<ReplicaRecord[]> {
    return (this.stmts.replicas.all(fileId) as ReplicaRow[]).map(toReplica);
  }

  async unhealthyReplicas(limit: number): Promise<ReplicaRecord[]> {
    return (this.stmts.unhealthy.all(limit) as ReplicaRow[]).map(toReplica);
  }

  async replicasOnNode(node: string): Promise<NodeReplica[]> {
    const rows = this.stmts.onNode.all(node) as (ReplicaRow & {
      file_sha256: string;
      live: number;
    })[];
    return rows.map((r) => ({ ...toReplica(r), fileSha256: r.file_sha256, live: r.live === 1 }));
  }

  async setReplicaState(
    key: string,
    node: string,
    state: ReplicaState,
    seen?: Pick<ReplicaRecord, 'state' | 'updatedAt'>,
  ): Promise<boolean> {
    const res = seen
      ? this.stmts.setReplicaIfSeen.run(state, Date.now(), key, node, seen.state, seen.updatedAt)
      : this.stmts.setReplica.run(state, Date.now(), key, node);
    return res.changes === 1;
  }

  async forgetReplica(key: string, node: string): Promise<void> {
    this.stmts.forgetReplica.run(key, node);
  }

  async variantsOf(fileId: string): Promise<VariantRecord[]> {
    return (this.processing.variants.all(fileId) as VariantRow[]).map(toVariant);
  }

  async beginProcessing(fileId: string): Promise<number | null> {
    const row = this.processing.begin.get(fileId) as { processing_attempts: number } | undefined;
    return row?.processing_attempts ?? null;
  }

  async abandonProcessing(fileId: string): Promise<void> {
    this.processing.abandon.run(fileId);
  }

  async completeProcessing(
    fileId: string,
    variants: Omit<VariantRecord, 'fileId'>[],
    replicas: { key: string; node: string; state: ReplicaState }[],
  ): Promise<boolean> {
    return this.storeVariants(fileId, variants, replicas, true);
  }

  async recordVariants(
    fileId: string,
    variants: Omit<VariantRecord, 'fileId'>[],
    replicas: { key: string; node: string; state: ReplicaState }[],
  ): Promise<boolean> {
    return this.storeVariants(fileId, variants, replicas, false);
  }

  /** The variants and their replica rows in one IMMEDIATE transaction; `done` also ends processing. */
  private storeVariants(
    fileId: string,
    variants: Omit<VariantRecord, 'fileId'>[],
    replicas: { key: string; node: string; state: ReplicaState }[],
    done: boolean,
  ): boolean {
    let recorded = false;
    this.immediately(() => (recorded = this.completeTx(fileId, variants, replicas, done)));
    return recorded;
  }

  async failProcessing(fileId: string, reason: string): Promise<void> {
    this.processing.fail.run(reason, fileId);
  }

  async pendingProcessing(createdBefore: number, limit: number): Promise<FileRecord[]> {
    return (this.processing.pending.all(createdBefore, limit) as FileRow[]).map(toFile);
  }

  /**
   * Read and written in one IMMEDIATE transaction (SQLite's single writer
   * orders batches from every process), fsynced before it resolves: a grant
   * goes out only once its count survives a power cut. Batches of other files
   * in the same turn share the fsync.
   */
  grantDownloads(
    id: string,
    takes: number,
    returns: number,
  ): Promise<{ before: number; after: number } | undefined> {
    return this.groupDurably(() => {
      const row = this.stmts.used.get(id) as { used: number; max: number } | undefined;
      if (!row) return undefined;
      const base = Math.max(0, row.used - returns);
      const after = base + Math.min(takes, Math.max(0, row.max - base));
      if (after !== row.used) this.stmts.setUsed.run(after, id);
      return { before: row.used, after };
    });
  }

  async markDeleted(id: string, reason: DeleteReason, at: number): Promise<boolean> {
    let changed = 0;
    this.durably(() => (changed = this.stmts.markDeleted.run(at, reason, id).changes));
    return changed === 1;
  }

  async expiredLiveFiles(now: number, limit: number): Promise<FileRecord[]> {
    return (this.stmts.expiredLive.all(now, limit) as FileRow[]).map(toFile);
  }

  async tombstonesWithBlobs(deletedBefore: number, limit: number): Promise<FileRecord[]> {
    return (this.stmts.tombstonesWithBlobs.all(deletedBefore, limit) as FileRow[]).map(toFile);
  }

  async purgeTombstones(deletedBefore: number): Promise<number> {
    return this.stmts.purgeTombstones.run(deletedBefore).changes;
  }

  async counts(copies: number) {
    const objects = (this.stmts.objects.get() as { n: number }).n;
    const underReplicated = (this.stmts.under.get(copies) as { n: number }).n;
    return { objects, underReplicated };
  }

  async listFiles(q: FileListQuery): Promise<FileRecord[]> {
    const params: Record<string, number | string> = {};
    const sql = listFilesSql(q, (value) => {
      const name = `p${Object.keys(params).length + 1}`;
      params[name] = value;
      return `@${name}`;
    });
    return (this.listStatement(sql).all(params) as FileRow[]).map(toFile);
  }

  /** The few shapes of the listing query, each prepared once. */
  private listStatement(sql: string): Database.Statement {
    let stmt = this.listStatements.get(sql);
    if (!stmt) this.listStatements.set(sql, (stmt = this.db.prepare(sql)));
    return stmt;
  }

  async currentLayout(): Promise<Layout | undefined> {
    const row = this.layouts.newest.get(1) as LayoutRow | undefined;
    return row && toLayout(row);
  }

  /** Fsynced before it resolves: a version the CLI reported saved survives a power cut. */
  async saveLayout(layout: Layout): Promise<boolean> {
    const row = layoutRow(layout);
    let saved = 0;
    this.durably(() => (saved = this.layouts.save.run(row).changes));
    return saved === 1;
  }

  async layoutHistory(limit: number): Promise<Layout[]> {
    return (this.layouts.newest.all(limit) as LayoutRow[]).map(toLayout);
  }

  async replicaCountOnNode(node: string): Promise<number> {
    return (this.placement.countOnNode.get(node) as { n: number }).n;
  }

  async addReplica(
    fileId: string,
    key: string,
    node: string,
    state: ReplicaState,
  ): Promise<boolean> {
    const row = this.placement.addReplica.get({ fileId, key, node, state, now: Date.now() });
    return row !== undefined;
  }

  async placementPage(afterId: string | undefined, limit: number): Promise<PlacedFile[]> {
    return this.readPage(afterId ?? '', limit);
  }

  async createResumable(u: NewResumable): Promise<void> {
    this.resumable.insert.run({
      ...u,
      metadata: JSON.stringify(u.metadata),
      s3Bucket: u.s3?.bucket ?? null,
      s3Key: u.s3?.key ?? null,
    });
  }

  async getResumable(id: string): Promise<ResumableUpload | undefined> {
    const row = this.resumable.get.get(id) as ResumableRow | undefined;
    return row && toResumable(row);
  }

  async partsOf(uploadId: string): Promise<UploadPart[]> {
    return (this.resumable.parts.all(uploadId) as PartRow[]).map(toPart);
  }

  async getPart(key: string): Promise<UploadPart | undefined> {
    const row = this.resumable.part.get(key) as PartRow | undefined;
    return row && toPart(row);
  }

  async resumableUsage(client: string, now: number): Promise<{ uploads: number; bytes: number }> {
    return this.resumable.usage.get(client, now) as { uploads: number; bytes: number };
  }

  async declareResumableLength(id: string, length: number): Promise<boolean> {
    return this.resumable.declareLength.run(length, id).changes === 1;
  }

  async beginPart(part: Parameters<MetadataStore['beginPart']>[0]): Promise<void> {
    this.resumable.beginPart.run({
      ...part,
      nodes: JSON.stringify(part.nodes),
      partNumber: part.partNumber ?? null,
    });
  }

  /**
   * Not fsynced: an offset that a power cut takes back is one the client
   * learns from HEAD and sends again (tus resumes from the offset the server
   * reports), so a PATCH need not wait for the disk.
   */
  async storePart(part: Parameters<MetadataStore['storePart']>[0]): Promise<boolean> {
    return this.storePartTx.immediate(part);
  }

  async forgetPart(key: string): Promise<void> {
    this.resumable.forgetPart.run(key);
  }

  async endResumable(id: string, state: 'done' | 'terminated'): Promise<boolean> {
    return this.resumable.end.run(state, id).changes === 1;
  }

  async staleResumables(now: number, limit: number): Promise<ResumableUpload[]> {
    return (this.resumable.stale.all(now, limit) as ResumableRow[]).map(toResumable);
  }

  async forgetResumable(id: string): Promise<void> {
    // Its part rows go with it (ON DELETE CASCADE; openDatabase turns foreign keys on).
    this.resumable.forget.run(id);
  }

  async ping(): Promise<boolean> {
    return this.db.prepare('SELECT 1 AS ok').get() !== undefined;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

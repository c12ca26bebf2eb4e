/**
 * The PostgreSQL schema, as versioned migrations. Each runs once, in its own
 * transaction, under an advisory lock, so gateways and workers starting
 * together on several hosts take turns instead of racing: the first applies
 * a step, the others find it recorded and go on.
 */
import type { Pool, PoolClient } from 'pg';
import { checkout } from './postgres-checkout.js';

/** Append only: a shipped migration is never edited, the next change is a new entry. */
export const PG_MIGRATIONS: string[] = [
  // 1: the schema SQLite reached in five steps (files, tombstones, processing, listing, links).
  // Keys compare byte-wise (COLLATE "C"), as in SQLite: the listing's keyset paging relies on it.
  `CREATE TABLE files (
     id                  TEXT COLLATE "C" PRIMARY KEY,
     name                TEXT NOT NULL,
     size                BIGINT NOT NULL DEFAULT 0,
     content_type        TEXT NOT NULL,
     sha256              TEXT NOT NULL DEFAULT '',
     state               TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'aborted')),
     max_downloads       INTEGER NOT NULL,
     downloads_used      INTEGER NOT NULL DEFAULT 0,
     created_at          BIGINT NOT NULL,
     expires_at          BIGINT NOT NULL,
     delete_token_hash   TEXT NOT NULL,
     owner               TEXT NOT NULL,
     deleted_at          BIGINT,
     delete_reason       TEXT CHECK (delete_reason IN ('expired', 'deleted')),
     processing          TEXT NOT NULL DEFAULT 'skipped'
                           CHECK (processing IN ('pending', 'done', 'failed', 'skipped')),
     processing_error    TEXT,
     processing_attempts INTEGER NOT NULL DEFAULT 0,
     upload_link         TEXT
   );
   CREATE INDEX files_by_state ON files (state, created_at);
   CREATE INDEX files_live_by_expiry ON files (expires_at)
     WHERE state = 'committed' AND deleted_at IS NULL;
   CREATE INDEX files_tombstones ON files (deleted_at) WHERE deleted_at IS NOT NULL;
   CREATE INDEX files_processing_pending ON files (created_at)
     WHERE processing = 'pending' AND state = 'committed' AND deleted_at IS NULL;
   CREATE INDEX files_by_created ON files (created_at, id);
   CREATE INDEX files_by_upload_link ON files (upload_link) WHERE upload_link IS NOT NULL;
   CREATE TABLE replicas (
     key        TEXT COLLATE "C" NOT NULL,
     file_id    TEXT COLLATE "C" NOT NULL REFERENCES files (id) ON DELETE CASCADE,
     node       TEXT COLLATE "C" NOT NULL,
     state      TEXT NOT NULL CHECK (state IN ('ok', 'missing', 'corrupt')),
     updated_at BIGINT NOT NULL,
     PRIMARY KEY (key, node)
   );
   CREATE INDEX replicas_by_file ON replicas (file_id);
   CREATE INDEX replicas_by_node ON replicas (node);
   CREATE INDEX replicas_unhealthy ON replicas (updated_at) WHERE state <> 'ok';
   CREATE TABLE variants (
     file_id      TEXT COLLATE "C" NOT NULL REFERENCES files (id) ON DELETE CASCADE,
     variant      TEXT COLLATE "C" NOT NULL,
     size         BIGINT NOT NULL,
     width        INTEGER NOT NULL,
     height       INTEGER NOT NULL,
     content_type TEXT NOT NULL,
     sha256       TEXT NOT NULL,
     created_at   BIGINT NOT NULL,
     PRIMARY KEY (file_id, variant)
   );`,
  // 2: the cluster layout, one row per version (never updated). The nodes are JSON as TEXT,
  // not JSONB: kept byte for byte as SQLite keeps them, so metadata:copy's checksums compare.
  `CREATE TABLE layouts (
     version    INTEGER PRIMARY KEY CHECK (version >= 1),
     created_at BIGINT NOT NULL,
     nodes      TEXT NOT NULL,
     note       TEXT NOT NULL
   );`,
  // 3: resumable (tus) uploads and their parts, as SQLite's migration 7 makes them. Metadata and
  // nodes are JSON as TEXT, as in SQLite.
  `CREATE TABLE resumable_uploads (
     id            TEXT COLLATE "C" PRIMARY KEY,
     file_id       TEXT COLLATE "C" NOT NULL UNIQUE,
     name          TEXT NOT NULL,
     content_type  TEXT,
     upload_length BIGINT,
     upload_offset BIGINT NOT NULL DEFAULT 0,
     max_downloads INTEGER NOT NULL,
     ttl_seconds   INTEGER NOT NULL,
     metadata      TEXT NOT NULL,
     client        TEXT NOT NULL,
     upload_link   TEXT,
     created_at    BIGINT NOT NULL,
     expires_at    BIGINT NOT NULL,
     state         TEXT NOT NULL CHECK (state IN ('uploading', 'done', 'terminated'))
   );
   CREATE INDEX resumable_by_client ON resumable_uploads (client, state);
   CREATE INDEX resumable_by_state ON resumable_uploads (state, expires_at);
   CREATE TABLE upload_parts (
     key         TEXT COLLATE "C" PRIMARY KEY,
     upload_id   TEXT COLLATE "C" NOT NULL REFERENCES resumable_uploads (id) ON DELETE CASCADE,
     part_offset BIGINT NOT NULL,
     size        BIGINT,
     sha256      TEXT,
     nodes       TEXT NOT NULL,
     stored      BOOLEAN NOT NULL DEFAULT false,
     created_at  BIGINT NOT NULL
   );
   CREATE INDEX upload_parts_by_upload ON upload_parts (upload_id, part_offset);`,
  // 4: the S3 API, as SQLite's migration 8 makes it. Bucket names and keys compare byte-wise
  // (COLLATE "C"): S3 lists keys in UTF-8 byte order, and the listing pages by key.
  `CREATE TABLE s3_access_keys (
     id            TEXT COLLATE "C" PRIMARY KEY,
     name          TEXT NOT NULL,
     sealed_secret TEXT,
     created_at    BIGINT NOT NULL,
     revoked_at    BIGINT
   );
   CREATE TABLE s3_buckets (
     name                  TEXT COLLATE "C" PRIMARY KEY,
     owner                 TEXT COLLATE "C" NOT NULL,
     created_at            BIGINT NOT NULL,
     default_max_downloads INTEGER,
     default_ttl_seconds   INTEGER
   );
   CREATE INDEX s3_buckets_by_owner ON s3_buckets (owner, name);
   CREATE TABLE s3_objects (
     bucket        TEXT COLLATE "C" NOT NULL REFERENCES s3_buckets (name),
     key           TEXT COLLATE "C" NOT NULL,
     file_id       TEXT COLLATE "C" NOT NULL REFERENCES files (id) ON DELETE CASCADE,
     etag          TEXT NOT NULL,
     size          BIGINT NOT NULL,
     content_type  TEXT NOT NULL,
     last_modified BIGINT NOT NULL,
     user_metadata TEXT NOT NULL,
     md5           TEXT,
     PRIMARY KEY (bucket, key)
   );
   CREATE INDEX s3_objects_by_file ON s3_objects (file_id);
   ALTER TABLE resumable_uploads ADD COLUMN s3_bucket TEXT COLLATE "C";
   ALTER TABLE resumable_uploads ADD COLUMN s3_key TEXT COLLATE "C";
   CREATE INDEX resumable_by_s3_key ON resumable_uploads (s3_bucket, s3_key, created_at)
     WHERE s3_bucket IS NOT NULL;
   ALTER TABLE upload_parts ADD COLUMN part_number INTEGER;
   ALTER TABLE upload_parts ADD COLUMN md5 TEXT;
   CREATE INDEX upload_parts_by_number ON upload_parts (upload_id, part_number)
     WHERE part_number IS NOT NULL;`,
];

/** Any fixed number: one lock per database, held only while migrating. */
const MIGRATION_LOCK = 0x74726f76; // "trov"

/**
 * Applies the migrations not yet recorded in `trove_migrations`, one
 * transaction each. The whole run holds a session advisory lock: a second
 * process waits for it, then finds every step recorded. A process that dies
 * holding it drops its connection, and with it the lock.
 */
export async function migratePostgres(pool: Pool): Promise<void> {
  const held = await checkout(pool);
  const { client } = held;
  try {
    // A migration may rewrite a large table, and waits for other processes' migrations: no timeout.
    await client.query('SET statement_timeout = 0');
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS trove_migrations (
           version    INTEGER PRIMARY KEY,
           applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )`,
      );
      const done = await client.query<{ version: number }>('SELECT version FROM trove_migrations');
      const applied = new Set(done.rows.map((r) => r.version));
      for (let version = 1; version <= PG_MIGRATIONS.length; version++) {
        if (!applied.has(version)) await apply(client, version);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    await client.query('RESET statement_timeout').catch(() => undefined);
    held.release();
  }
}

async function apply(client: PoolClient, version: number): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(PG_MIGRATIONS[version - 1]!);
    await client.query('INSERT INTO trove_migrations (version) VALUES ($1)', [version]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

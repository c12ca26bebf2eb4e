/**
 * Copies a SQLite metadata store into an empty PostgreSQL database, in one
 * PostgreSQL transaction that also checks the result: every table's row
 * count and sha256 (over its rows in key order) read back from PostgreSQL
 * must equal SQLite's, or the transaction is rolled back and the target is
 * left as empty as it was found.
 *
 * Rows stream: SQLite's are iterated in key order, hashed and inserted in
 * batches; PostgreSQL's are read back through a cursor. Neither side is ever
 * held in memory whole.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { isConnectionError } from '../../shared/postgres-metadata-store.js';
import { migratePostgres } from '../../shared/postgres-migrations.js';
import { SQLITE_SCHEMA_VERSION } from '../../shared/sqlite-metadata-store.js';
import {
  TABLES,
  TableDigest,
  columnArrays,
  columnDifference,
  insertStatement,
  selectInKeyOrder,
  type RawRow,
  type TableSpec,
} from './tables.js';

/** The copy was not started: the source or the target is not fit for it (exit code 2). */
export class CopyRefusedError extends Error {
  override name = 'CopyRefusedError';
}

export interface CopyOptions {
  /** The SQLite file (DB_PATH). */
  from: string;
  /** The PostgreSQL database, as DATABASE_URL. */
  to: string;
  /** Rows per INSERT and per cursor FETCH. */
  batchSize?: number;
  /** A line of progress (a table done). */
  progress?: (line: string) => void;
}

export interface TableResult {
  table: TableSpec['name'];
  source: { rows: number; sha256: string };
  target: { rows: number; sha256: string };
}

export interface CopyResult {
  tables: TableResult[];
  /** The tables whose count or checksum differ; empty when the copy was committed. */
  mismatched: TableResult['table'][];
  committed: boolean;
  seconds: number;
}

/** The tables whose row count or checksum differ between the two sides. */
export function mismatchedTables(tables: readonly TableResult[]): TableResult['table'][] {
  return tables
    .filter((t) => t.source.rows !== t.target.rows || t.source.sha256 !== t.target.sha256)
    .map((t) => t.table);
}

/**
 * Opens the source read-only: the copy never changes it, so it stays the
 * fallback whatever happens to the move. For the same reason it is not
 * migrated here; a store behind this Trove's schema is refused instead.
 */
export function openSource(path: string): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new CopyRefusedError(`cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version < SQLITE_SCHEMA_VERSION) {
      throw new CopyRefusedError(
        `${path} is at schema version ${version}, this Trove's is ${SQLITE_SCHEMA_VERSION}: ` +
          `start a gateway of this version on it once (it migrates at start-up), stop it, and copy again`,
      );
    }
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new CopyRefusedError(
        `${path} is at schema version ${version}, newer than this Trove's ${SQLITE_SCHEMA_VERSION}: ` +
          `copy it with the Trove version that wrote it`,
      );
    }
    for (const spec of TABLES) {
      const columns = (db.pragma(`table_info(${spec.name})`) as { name: string }[]).map(
        (c) => c.name,
      );
      checkColumns(spec, columns, `${path}`);
    }
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function checkColumns(spec: TableSpec, actual: string[], where: string): void {
  const { missing, extra } = columnDifference(spec, actual);
  if (missing.length + extra.length === 0) return;
  throw new CopyRefusedError(
    `${spec.name} in ${where} does not have the columns this copy knows` +
      (missing.length ? `; missing: ${missing.join(', ')}` : '') +
      (extra.length ? `; unknown: ${extra.join(', ')}` : ''),
  );
}

/** Which of the tables already hold a row (read under the transaction's lock). */
async function occupiedTables(client: pg.PoolClient): Promise<string[]> {
  const occupied: string[] = [];
  for (const spec of TABLES) {
    const res = await client.query(`SELECT 1 FROM ${spec.name} LIMIT 1`);
    if ((res.rowCount ?? 0) > 0) occupied.push(spec.name);
  }
  return occupied;
}

async function targetColumns(client: pg.PoolClient, table: string): Promise<string[]> {
  const res = await client.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return res.rows.map((r) => r.column_name);
}

/** Streams a SQLite table into PostgreSQL in batches; its digest, as read from SQLite. */
async function copyTable(
  source: Database.Database,
  client: pg.PoolClient,
  spec: TableSpec,
  batchSize: number,
): Promise<{ rows: number; sha256: string }> {
  // Safe integers: bigints, so no value past 2^53 is rounded on its way across.
  const stmt = source.prepare(selectInKeyOrder(spec, 'BINARY')).raw(true).safeIntegers(true);
  const insert = insertStatement(spec);
  const digest = new TableDigest(spec);
  let batch: RawRow[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await client.query(insert, columnArrays(spec, batch));
    batch = [];
  };
  for (const row of stmt.iterate() as IterableIterator<RawRow>) {
    digest.add(row);
    batch.push(row);
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return digest.digest();
}

/** A table's digest as PostgreSQL holds it (this transaction's view), read through a cursor. */
async function digestTarget(
  client: pg.PoolClient,
  spec: TableSpec,
  batchSize: number,
): Promise<{ rows: number; sha256: string }> {
  const digest = new TableDigest(spec);
  const cursor = `copy_check_${spec.name}`;
  await client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${selectInKeyOrder(spec, '"C"')}`);
  for (;;) {
    const res = await client.query<unknown[]>({
      text: `FETCH FORWARD ${batchSize} FROM ${cursor}`,
      rowMode: 'array',
    });
    for (const row of res.rows) digest.add(row);
    if (res.rows.length < batchSize) break;
  }
  await client.query(`CLOSE ${cursor}`);
  return digest.digest();
}

/** Connects and migrates the target; a server that cannot be reached or entered refuses the copy. */
async function openTarget(url: string): Promise<pg.Pool> {
  // BIGINT stays a string here (pg's default): checksums compare exact digits.
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 10_000 });
  pool.on('error', () => undefined); // an idle connection's loss; the query in flight reports it
  try {
    await migratePostgres(pool);
    return pool;
  } catch (err) {
    await pool.end();
    const code = (err as { code?: string }).code ?? '';
    // 28: bad password or role; 3D000: no such database.
    if (isConnectionError(err) || code.startsWith('28') || code === '3D000') {
      throw new CopyRefusedError(`cannot use ${redactUrl(url)}: ${(err as Error).message}`);
    }
    throw err;
  }
}

/** The URL as output may show it: without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(an invalid URL)';
  }
}

export async function copyMetadata(o: CopyOptions): Promise<CopyResult> {
  const started = performance.now();
  const batchSize = o.batchSize ?? 1000;
  const progress = o.progress ?? (() => undefined);
  const source = openSource(o.from);
  try {
    const pool = await openTarget(o.to);
    try {
      const client = await pool.connect();
      try {
        return await copyInTransaction(source, client, batchSize, progress, started);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
  } finally {
    source.close();
  }
}

async function copyInTransaction(
  source: Database.Database,
  client: pg.PoolClient,
  batchSize: number,
  progress: (line: string) => void,
  started: number,
): Promise<CopyResult> {
  for (const spec of TABLES) {
    checkColumns(spec, await targetColumns(client, spec.name), 'the target database');
  }
  await client.query('BEGIN');
  // Held to the commit: nothing else writes these tables between the emptiness check and the end.
  await client.query(`SET LOCAL lock_timeout = '10s'`);
  await client.query(`LOCK TABLE ${TABLES.map((t) => t.name).join(', ')} IN EXCLUSIVE MODE`);
  const occupied = await occupiedTables(client);
  if (occupied.length > 0) {
    throw new CopyRefusedError(
      `the target database is not empty (rows in ${occupied.join(', ')}): ` +
        `metadata:copy only fills an empty one; point --to at a new database`,
    );
  }
  // One read transaction on SQLite too: every table is copied from the same snapshot.
  const sourceDigests: { rows: number; sha256: string }[] = [];
  source.exec('BEGIN');
  try {
    for (const spec of TABLES) {
      const digest = await copyTable(source, client, spec, batchSize);
      progress(`${spec.name}: ${digest.rows} rows copied`);
      sourceDigests.push(digest);
    }
  } finally {
    source.exec('COMMIT');
  }
  const tables: TableResult[] = [];
  for (const [i, spec] of TABLES.entries()) {
    const target = await digestTarget(client, spec, batchSize);
    tables.push({ table: spec.name, source: sourceDigests[i]!, target });
  }
  const mismatched = mismatchedTables(tables);
  if (mismatched.length > 0) {
    await client.query('ROLLBACK');
  } else {
    await client.query('COMMIT');
    // Fresh statistics now, not at autovacuum's leisure: the first queries plan well.
    // Best effort: the copy is committed whatever becomes of it.
    await client.query(`ANALYZE ${TABLES.map((t) => t.name).join(', ')}`).catch(() => undefined);
  }
  return {
    tables,
    mismatched,
    committed: mismatched.length === 0,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * The metadata tables as `npm run metadata:copy` moves them: every column,
 * in one order, with the key a table is read in on both sides; and the one
 * serialisation of a row that both sides hash, so a checksum says whether
 * PostgreSQL holds exactly what SQLite held.
 */
import { createHash, type Hash } from 'node:crypto';

/** How a column's values are written and hashed: INTEGER/BIGINT, or TEXT. */
export type ColumnType = 'integer' | 'text';

export interface TableSpec {
  name:
    'files' | 'replicas' | 'variants' | 'layouts' | 's3_access_keys' | 's3_buckets' | 's3_objects';
  /** Every column, in the order rows are read, inserted and hashed. */
  columns: readonly (readonly [name: string, type: ColumnType, pgType: string])[];
  /** The primary key: rows are hashed in this order, byte-wise on both sides. */
  key: readonly string[];
}

/**
 * In insertion order: replicas and variants reference files (layouts stand alone); S3
 * objects reference files and buckets. Resumable uploads and their parts are not copied:
 * they are transient (an upload in flight is sent again), and their blobs are swept. A column added
 * to either store's schema must be added here too; the copy refuses a table
 * whose columns differ from these (see checkColumns), so it cannot drop one.
 */
export const TABLES: readonly TableSpec[] = [
  {
    name: 'files',
    key: ['id'],
    columns: [
      ['id', 'text', 'text'],
      ['name', 'text', 'text'],
      ['size', 'integer', 'bigint'],
      ['content_type', 'text', 'text'],
      ['sha256', 'text', 'text'],
      ['state', 'text', 'text'],
      ['max_downloads', 'integer', 'integer'],
      ['downloads_used', 'integer', 'integer'],
      ['created_at', 'integer', 'bigint'],
      ['expires_at', 'integer', 'bigint'],
      ['delete_token_hash', 'text', 'text'],
      ['owner', 'text', 'text'],
      ['deleted_at', 'integer', 'bigint'],
      ['delete_reason', 'text', 'text'],
      ['processing', 'text', 'text'],
      ['processing_error', 'text', 'text'],
      ['processing_attempts', 'integer', 'integer'],
      ['upload_link', 'text', 'text'],
    ],
  },
  {
    name: 'replicas',
    key: ['key', 'node'],
    columns: [
      ['key', 'text', 'text'],
      ['file_id', 'text', 'text'],
      ['node', 'text', 'text'],
      ['state', 'text', 'text'],
      ['updated_at', 'integer', 'bigint'],
    ],
  },
  {
    name: 'variants',
    key: ['file_id', 'variant'],
    columns: [
      ['file_id', 'text', 'text'],
      ['variant', 'text', 'text'],
      ['size', 'integer', 'bigint'],
      ['width', 'integer', 'integer'],
      ['height', 'integer', 'integer'],
      ['content_type', 'text', 'text'],
      ['sha256', 'text', 'text'],
      ['created_at', 'integer', 'bigint'],
    ],
  },
  {
    name: 'layouts',
    key: ['version'],
    columns: [
      ['version', 'integer', 'integer'],
      ['created_at', 'integer', 'bigint'],
      // JSON, copied and hashed as the text it is (TEXT on both sides, never re-encoded).
      ['nodes', 'text', 'text'],
      ['note', 'text', 'text'],
    ],
  },
  {
    name: 's3_access_keys',
    key: ['id'],
    columns: [
      ['id', 'text', 'text'],
      ['name', 'text', 'text'],
      // Sealed under the cluster secret, copied as the text it is: the cluster keeps its secret.
      ['sealed_secret', 'text', 'text'],
      ['created_at', 'integer', 'bigint'],
      ['revoked_at', 'integer', 'bigint'],
    ],
  },
  {
    name: 's3_buckets',
    key: ['name'],
    columns: [
      ['name', 'text', 'text'],
      ['owner', 'text', 'text'],
      ['created_at', 'integer', 'bigint'],
      ['default_max_downloads', 'integer', 'integer'],
      ['default_ttl_seconds', 'integer', 'integer'],
    ],
  },
  {
    name: 's3_objects',
    key: ['bucket', 'key'],
    columns: [
      ['bucket', 'text', 'text'],
      ['key', 'text', 'text'],
      ['file_id', 'text', 'text'],
      ['etag', 'text', 'text'],
      ['size', 'integer', 'bigint'],
      ['content_type', 'text', 'text'],
      ['last_modified', 'integer', 'bigint'],
      ['user_metadata', 'text', 'text'],
      ['md5', 'text', 'text'],
    ],
  },
];

/** A row as either driver returns it in array mode: SQLite gives bigints, pg strings or numbers. */
export type RawRow = readonly unknown[];

/**
 * An integer column's value as exact decimal digits, whatever the driver
 * made of it (a bigint from better-sqlite3's safe integers, a string for
 * PostgreSQL's BIGINT, a number for its INTEGER): no value past 2^53 is
 * rounded on the way, and both sides hash the same text.
 */
function integerText(table: string, column: string, v: unknown): string {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v).toString();
  throw new TypeError(`${table}.${column}: ${String(v)} is not an integer`);
}

function textValue(table: string, column: string, v: unknown): string {
  if (typeof v === 'string') return v;
  throw new TypeError(`${table}.${column}: ${typeof v} where text was expected`);
}

/** A row's values as query parameters: integers as decimal text (cast to their type in SQL), NULL kept. */
export function toParams(spec: TableSpec, row: RawRow): (string | null)[] {
  return spec.columns.map(([name, type], i) => {
    const v = row[i];
    if (v === null || v === undefined) return null;
    return type === 'integer' ? integerText(spec.name, name, v) : textValue(spec.name, name, v);
  });
}

/**
 * One row as one line of the checksum: integers as bare digits, text as a
 * JSON string, NULL as `null`, so "5", 5 and NULL all differ.
 */
export function canonicalRow(spec: TableSpec, row: RawRow): string {
  const params = toParams(spec, row);
  return params
    .map((p, i) =>
      p === null ? 'null' : spec.columns[i]![1] === 'integer' ? p : JSON.stringify(p),
    )
    .join(',');
}

/** A table's row count and sha256 over its rows in key order, fed as they stream past. */
export class TableDigest {
  rows = 0;
  private readonly hash: Hash = createHash('sha256');

  constructor(private readonly spec: TableSpec) {}

  add(row: RawRow): void {
    this.rows++;
    this.hash.update(canonicalRow(this.spec, row));
    this.hash.update('\n');
  }

  digest(): { rows: number; sha256: string } {
    return { rows: this.rows, sha256: this.hash.digest('hex') };
  }
}

/** What the column lists of a table lack and have too many of, against the spec. */
export function columnDifference(
  spec: TableSpec,
  actual: readonly string[],
): { missing: string[]; extra: string[] } {
  const expected = spec.columns.map(([name]) => name);
  return {
    missing: expected.filter((c) => !actual.includes(c)),
    extra: actual.filter((c) => !expected.includes(c)),
  };
}

/**
 * `SELECT <columns> FROM <table> ORDER BY <key>`, a text key compared
 * byte-wise (`collate`); an integer key as a number (PostgreSQL refuses a
 * collation on an integer).
 */
export function selectInKeyOrder(spec: TableSpec, collate: string): string {
  const columns = spec.columns.map(([name]) => quote(name)).join(', ');
  const typeOf = (column: string) => spec.columns.find(([name]) => name === column)?.[1];
  const order = spec.key
    .map((k) => (typeOf(k) === 'text' ? `${quote(k)} COLLATE ${collate}` : quote(k)))
    .join(', ');
  return `SELECT ${columns} FROM ${spec.name} ORDER BY ${order}`;
}

/**
 * One multi-row INSERT for a batch: each column arrives as one array
 * parameter, zipped back into rows by unnest (a fixed number of parameters,
 * however many rows).
 */
export function insertStatement(spec: TableSpec): string {
  const columns = spec.columns.map(([name]) => quote(name)).join(', ');
  const arrays = spec.columns.map(([, , pgType], i) => `$${i + 1}::${pgType}[]`).join(', ');
  return `INSERT INTO ${spec.name} (${columns}) SELECT * FROM unnest(${arrays})`;
}

/** A batch of rows as the column arrays insertStatement() takes. */
export function columnArrays(spec: TableSpec, rows: readonly RawRow[]): (string | null)[][] {
  const arrays: (string | null)[][] = spec.columns.map(() => []);
  for (const row of rows) {
    toParams(spec, row).forEach((v, i) => arrays[i]!.push(v));
  }
  return arrays;
}

const quote = (name: string) => `"${name}"`;

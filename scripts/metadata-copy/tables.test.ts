import { describe, expect, it } from 'vitest';
import { mismatchedTables, type TableResult } from './copy.js';
import { parseCopyFlags, UsageError } from './options.js';
import {
  TABLES,
  TableDigest,
  canonicalRow,
  columnArrays,
  columnDifference,
  insertStatement,
  selectInKeyOrder,
} from './tables.js';

const replicas = TABLES.find((t) => t.name === 'replicas')!;
const files = TABLES.find((t) => t.name === 'files')!;

describe('canonicalRow', () => {
  it('writes an integer alike from either driver: bigint, BIGINT string, INTEGER number', () => {
    const line = canonicalRow(replicas, ['k', 'f', 'n', 'ok', 9_007_199_254_740_993n]);
    expect(line).toBe('"k","f","n","ok",9007199254740993');
    expect(canonicalRow(replicas, ['k', 'f', 'n', 'ok', '9007199254740993'])).toBe(line);
    expect(canonicalRow(replicas, ['k', 'f', 'n', 'ok', 12])).toBe(
      canonicalRow(replicas, ['k', 'f', 'n', 'ok', 12n]),
    );
  });

  it('tells text, NULL and separators apart', () => {
    const row = (name: unknown) => {
      const r: unknown[] = files.columns.map(([, type]) => (type === 'integer' ? 1n : 'x'));
      r[1] = name;
      return r;
    };
    const lines = [null, 'null', '', 'a","b', 'a\nb'].map((v) => canonicalRow(files, row(v)));
    expect(new Set(lines).size).toBe(lines.length);
  });

  it('refuses a value of the wrong kind instead of hashing it', () => {
    expect(() => canonicalRow(replicas, ['k', 'f', 'n', 'ok', 1.5])).toThrow(/updated_at/);
    expect(() => canonicalRow(replicas, [7n, 'f', 'n', 'ok', 1n])).toThrow(/replicas.key/);
  });
});

describe('TableDigest', () => {
  it('depends on every row and their order', () => {
    const digest = (rows: unknown[][]) => {
      const d = new TableDigest(replicas);
      for (const r of rows) d.add(r);
      return d.digest();
    };
    const a = ['a', 'f', 'n1', 'ok', 1n];
    const b = ['b', 'f', 'n1', 'missing', 2n];
    expect(digest([a, b])).toEqual(
      digest([
        ['a', 'f', 'n1', 'ok', '1'],
        ['b', 'f', 'n1', 'missing', 2],
      ]),
    );
    expect(digest([a, b]).rows).toBe(2);
    expect(digest([b, a]).sha256).not.toBe(digest([a, b]).sha256);
    expect(digest([a]).sha256).not.toBe(digest([a, b]).sha256);
  });
});

describe('SQL of the copy', () => {
  it('orders by the key byte-wise and inserts a batch as column arrays', () => {
    expect(selectInKeyOrder(replicas, '"C"')).toBe(
      'SELECT "key", "file_id", "node", "state", "updated_at" FROM replicas ORDER BY "key" COLLATE "C", "node" COLLATE "C"',
    );
    expect(insertStatement(replicas)).toBe(
      'INSERT INTO replicas ("key", "file_id", "node", "state", "updated_at") SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])',
    );
    expect(
      columnArrays(replicas, [
        ['a', 'f', 'n1', 'ok', 1n],
        ['b', 'f', 'n2', 'missing', 9_007_199_254_740_993n],
      ]),
    ).toEqual([
      ['a', 'b'],
      ['f', 'f'],
      ['n1', 'n2'],
      ['ok', 'missing'],
      ['1', '9007199254740993'],
    ]);
  });

  it('orders an integer key as a number, without a collation', () => {
    const layouts = TABLES.find((t) => t.name === 'layouts')!;
    expect(selectInKeyOrder(layouts, '"C"')).toBe(
      'SELECT "version", "created_at", "nodes", "note" FROM layouts ORDER BY "version"',
    );
  });

  it('names the columns a table has beyond or short of the spec', () => {
    expect(columnDifference(replicas, ['key', 'file_id', 'node', 'state', 'extra'])).toEqual({
      missing: ['updated_at'],
      extra: ['extra'],
    });
  });
});

describe('mismatchedTables', () => {
  it('names a table whose count or checksum differs', () => {
    const t = (table: TableResult['table'], rows: number, sha: string): TableResult => ({
      table,
      source: { rows: 2, sha256: 'a' },
      target: { rows, sha256: sha },
    });
    expect(
      mismatchedTables([t('files', 2, 'a'), t('replicas', 1, 'a'), t('variants', 2, 'b')]),
    ).toEqual(['replicas', 'variants']);
  });
});

describe('parseCopyFlags', () => {
  it('needs a postgres URL, takes a source and a batch size', () => {
    expect(parseCopyFlags(['--to', 'postgres://u@h/db'])).toEqual({
      to: 'postgres://u@h/db',
      from: undefined,
      batchSize: 1000,
    });
    expect(
      parseCopyFlags(['--to', 'postgresql://h/db', '--from', 'x.db', '--batch', '50']),
    ).toEqual({
      to: 'postgresql://h/db',
      from: 'x.db',
      batchSize: 50,
    });
    expect(parseCopyFlags(['--help'])).toBe('help');
    expect(() => parseCopyFlags([])).toThrow(UsageError);
    expect(() => parseCopyFlags(['--to', 'mysql://h/db'])).toThrow(/postgres/);
    expect(() => parseCopyFlags(['--to', 'postgres://h/db', '--batch', '0'])).toThrow(/--batch/);
    expect(() => parseCopyFlags(['--to', 'postgres://h/db', 'extra'])).toThrow(UsageError);
  });
});

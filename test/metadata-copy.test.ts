/**
 * `npm run metadata:copy` against the real PostgreSQL server: a SQLite store
 * filled through SqliteMetadataStore (every state a file can be in) is
 * copied into a new database, and every record read back through
 * PostgresMetadataStore equals the one SQLite gives; a target that is not
 * empty, and a source behind the schema, are refused.
 */
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyRefusedError, copyMetadata } from '../scripts/metadata-copy/copy.js';
import { blobKey } from '../shared/keys.js';
import { seedLayout } from '../shared/layout.js';
import { createLogger } from '../shared/logger.js';
import type { MetadataStore, ReplicaState } from '../shared/metadata-store.js';
import { PostgresMetadataStore } from '../shared/postgres-metadata-store.js';
import {
  SQLITE_SCHEMA_VERSION,
  SqliteMetadataStore,
  openDatabase,
} from '../shared/sqlite-metadata-store.js';
import { ROOT } from './harness.js';
import { createDatabase, queryPg, type TestDatabase } from './postgres.js';

const log = createLogger('test', 'silent');
const run = promisify(execFile);
const NOW = 1_700_000_000_000;
const NODES = ['node1', 'node2', 'node3'];

let dir: string;
let dbPath: string;
const databases: TestDatabase[] = [];

async function newDatabase(label: string): Promise<TestDatabase> {
  const db = await createDatabase(label);
  databases.push(db);
  return db;
}

/** Runs the built CLI (npm run build first), as an operator would. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [join(ROOT, 'dist/scripts/metadata-copy.js'), ...args],
      { cwd: dir },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Every kind of row the stores write, through the store's own API. Returns the file ids. */
async function fill(store: MetadataStore): Promise<string[]> {
  const ids: string[] = [];
  const begin = (id: string, o: { contentType?: string; max?: number; link?: string } = {}) => {
    ids.push(id);
    return store.beginUpload({
      id,
      name: `photo "${id}" – ünïcode ✓.jpg`,
      contentType: o.contentType ?? 'image/jpeg',
      maxDownloads: o.max ?? 3,
      createdAt: NOW + ids.length,
      expiresAt: NOW + 86_400_000,
      deleteTokenHash: `hash-${id}`,
      owner: 'gateway-a',
      ...(o.link && { uploadLink: o.link }),
    });
  };
  const commit = (id: string, size = 1234, states: ReplicaState[] = ['ok', 'ok', 'ok']) =>
    store.commitUploads([
      {
        id,
        size,
        sha256: `sha-${id}`,
        maxDownloads: 3,
        expiresAt: NOW + 3_600_000,
        replicas: NODES.map((node, i) => ({ key: id, node, state: states[i] ?? 'ok' })),
      },
    ]);

  // Committed, with downloads used; ids chosen so byte order and locale order differ.
  for (const id of ['Zeta', 'alpha', 'Alpha', 'beta-1', 'beta_2', 'é-accent']) {
    await begin(id, { link: 'link-one' });
    await commit(id);
  }
  await store.grantDownloads('Zeta', 2, 0);
  await store.grantDownloads('alpha', 3, 0); // exhausted
  // Unlimited, and a size past 2^32.
  await begin('big', { max: 0, contentType: 'application/pdf' });
  await commit('big', 5_000_000_000);
  // Missing and corrupt replicas.
  await begin('damaged', { link: 'link-two' });
  await commit('damaged', 10, ['ok', 'missing', 'corrupt']);
  await store.setReplicaState('damaged', 'node1', 'missing');
  // Tombstones: deleted by its owner, and expired.
  await begin('deleted');
  await commit('deleted');
  await store.markDeleted('deleted', 'deleted', NOW + 5000);
  await begin('expired');
  await commit('expired');
  await store.markDeleted('expired', 'expired', NOW + 6000);
  // Aborted, and still pending.
  await begin('aborted', { link: 'link-two' });
  await store.abortUpload('aborted');
  await begin('pending');
  // Processing: done with variants, failed, one attempt in progress.
  await begin('processed');
  await commit('processed');
  await store.beginProcessing('processed');
  await store.completeProcessing(
    'processed',
    [
      {
        variant: 'thumb',
        size: 900,
        width: 320,
        height: 240,
        contentType: 'image/webp',
        sha256: 't',
        createdAt: NOW + 10,
      },
      {
        variant: 'compressed',
        size: 9000,
        width: 1600,
        height: 1200,
        contentType: 'image/webp',
        sha256: 'c',
        createdAt: NOW + 11,
      },
    ],
    NODES.flatMap((node) => [
      { key: blobKey('processed', 'thumb'), node, state: 'ok' as const },
      {
        key: blobKey('processed', 'compressed'),
        node,
        state: node === 'node2' ? ('missing' as const) : ('ok' as const),
      },
    ]),
  );
  await begin('failed');
  await commit('failed');
  await store.beginProcessing('failed');
  await store.failProcessing('failed', 'unsupported image: "bad" header\nline two');
  await begin('in-progress');
  await commit('in-progress');
  await store.beginProcessing('in-progress');
  await store.recordVariants(
    'in-progress',
    [
      {
        variant: 'thumb',
        size: 1,
        width: 1,
        height: 1,
        contentType: 'image/webp',
        sha256: 'x',
        createdAt: NOW,
      },
    ],
    [{ key: blobKey('in-progress', 'thumb'), node: 'node3', state: 'ok' }],
  );
  await store.beginProcessing('in-progress');
  // Enough plain files for several batches.
  for (let i = 0; i < 40; i++) {
    const id = `bulk-${String(i).padStart(3, '0')}`;
    await begin(id, { contentType: 'text/plain', ...(i % 3 === 0 && { link: 'link-one' }) });
    await commit(id, i);
  }
  // Two layout versions: the seed, then a node added in a zone of its own, weighted.
  const seed = seedLayout(
    NODES.map((id, i) => ({ id, url: `http://10.0.0.${i + 1}:9001` })),
    NOW,
  );
  await store.saveLayout(seed);
  await store.saveLayout({
    version: 2,
    createdAt: NOW + 60_000,
    nodes: [
      ...seed.nodes,
      { id: 'node4', url: 'http://10.0.0.4:9001', zone: 'rack-b.2', weight: 2.5, role: 'active' },
    ],
    note: 'add node4 (zone "rack-b.2" ✓, weight 2.5)\nsecond line',
  });
  return ids;
}

function byKey<R extends { key: string; node: string }>(rows: R[]): R[] {
  const k = (r: R) => `${r.key}\n${r.node}`;
  return rows.sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0));
}

/** What a store says about every file, its replicas and variants, and the queries over them. */
async function snapshot(store: MetadataStore, ids: string[]) {
  const files = [];
  for (const id of ids) {
    files.push({
      file: await store.getFile(id),
      replicas: await store.replicasOf(id),
      variants: await store.variantsOf(id),
    });
  }
  return {
    files,
    links: {
      one: await store.countLinkUploads('link-one'),
      two: await store.countLinkUploads('link-two'),
    },
    listing: await store.listFiles({ now: NOW + 1, limit: 1000 }),
    exhausted: await store.listFiles({ status: 'exhausted', now: NOW + 1, limit: 1000 }),
    counts: await store.counts(3),
    // Ordered by updated_at alone, which ties: compared in key order.
    unhealthy: byKey(await store.unhealthyReplicas(1000)),
    onNode2: byKey(await store.replicasOnNode('node2')),
    tombstones: await store.tombstonesWithBlobs(NOW + 10_000, 1000),
    layouts: await store.layoutHistory(10),
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trove-metadata-copy-'));
  dbPath = join(dir, 'trove.db');
});
afterAll(async () => {
  for (const db of databases) await db.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('metadata:copy', () => {
  let ids: string[];
  let expected: Awaited<ReturnType<typeof snapshot>>;
  let target: TestDatabase;

  beforeAll(async () => {
    const sqlite = new SqliteMetadataStore(openDatabase(dbPath));
    ids = await fill(sqlite);
    expected = await snapshot(sqlite, ids);
    await sqlite.close();
    target = await newDatabase('copy');
  });

  it('copies every row, checks it, and PostgresMetadataStore reads what SQLite held', async () => {
    const result = await copyMetadata({ from: dbPath, to: target.url, batchSize: 7 });
    expect(result.committed).toBe(true);
    expect(result.mismatched).toEqual([]);
    expect(result.tables.map((t) => [t.table, t.source.rows])).toEqual([
      ['files', ids.length],
      ['replicas', expected.files.reduce((n, f) => n + f.replicas.length, 0)],
      ['variants', 3],
      ['layouts', 2],
      ['s3_access_keys', 0],
      ['s3_buckets', 0],
      ['s3_objects', 0],
    ]);
    for (const t of result.tables) expect(t.target).toEqual(t.source);

    const pg = await PostgresMetadataStore.open({ url: target.url, log });
    try {
      const copied = await snapshot(pg, ids);
      expect(copied).toEqual(expected);
      // The sample covers what it claims to.
      expect(expected.links).toEqual({ one: 20, two: 1 });
      expect(expected.files.find((f) => f.file?.id === 'big')?.file?.size).toBe(5_000_000_000);
      expect(expected.unhealthy.length).toBeGreaterThanOrEqual(3);
      expect(expected.tombstones.map((f) => f.deleteReason).sort()).toEqual(['deleted', 'expired']);
      expect(expected.layouts.map((l) => l.version)).toEqual([2, 1]);
      // The next version is still the store's to decide, on the copy as on the source.
      expect(await pg.saveLayout({ ...expected.layouts[0]!, version: 2 })).toBe(false);
      // upload_link is a column, so the link's count survives even past the API's view.
      const links = await queryPg<{ upload_link: string | null; n: string }>(
        target.url,
        `SELECT upload_link, count(*) AS n FROM files GROUP BY upload_link ORDER BY upload_link`,
      );
      expect(links).toEqual([
        { upload_link: 'link-one', n: '20' },
        { upload_link: 'link-two', n: '2' },
        { upload_link: null, n: String(ids.length - 22) },
      ]);
    } finally {
      await pg.close();
    }
  });

  it('leaves the source as it was: opened read-only, never migrated', async () => {
    const db = new Database(dbPath, { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM files').get()).toEqual({ n: ids.length });
    } finally {
      db.close();
    }
  });

  it('refuses a target that is not empty, and changes nothing there', async () => {
    await expect(copyMetadata({ from: dbPath, to: target.url })).rejects.toThrow(
      /target database is not empty \(rows in files, replicas, variants, layouts\)/,
    );
    const { code, stderr } = await cli(['--from', dbPath, '--to', target.url]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/refused: the target database is not empty/);
    const [row] = await queryPg<{ n: string }>(target.url, 'SELECT count(*) AS n FROM files');
    expect(Number(row!.n)).toBe(ids.length);
  });

  it('refuses a target with a single row in any table', async () => {
    const other = await newDatabase('copy_one_row');
    const pg = await PostgresMetadataStore.open({ url: other.url, log });
    await pg.beginUpload({
      id: 'x',
      name: 'x',
      contentType: 'text/plain',
      maxDownloads: 0,
      createdAt: 1,
      expiresAt: 2,
      deleteTokenHash: 'h',
      owner: 'o',
    });
    await pg.close();
    await expect(copyMetadata({ from: dbPath, to: other.url })).rejects.toBeInstanceOf(
      CopyRefusedError,
    );
  });

  it('refuses a target that holds only a layout (a gateway started on it seeded one)', async () => {
    const other = await newDatabase('copy_layout_only');
    const pg = await PostgresMetadataStore.open({ url: other.url, log });
    await pg.saveLayout(seedLayout([{ id: 'node1', url: 'http://127.0.0.1:9001' }]));
    await pg.close();
    await expect(copyMetadata({ from: dbPath, to: other.url })).rejects.toThrow(
      /not empty \(rows in layouts\)/,
    );
  });

  it('runs from the command line, its source DB_PATH from .env by default: summary, exit 0', async () => {
    const fresh = await newDatabase('copy_cli');
    await writeFile(join(dir, '.env'), `DB_PATH=${dbPath}\n`);
    const env = { ...process.env };
    delete env.DB_PATH;
    delete env.STORAGE_DIR;
    const { stdout, stderr } = await run(
      process.execPath,
      [join(ROOT, 'dist/scripts/metadata-copy.js'), '--to', fresh.url, '--batch', '5'],
      { cwd: dir, env },
    );
    expect(stderr).toContain(`${dbPath} → ${fresh.url}`);
    for (const table of ['files', 'replicas', 'variants', 'layouts']) {
      expect(stdout).toMatch(new RegExp(`^  ${table} +\\d+ rows +sha256 [0-9a-f]{64}$`, 'm'));
    }
    expect(stdout).toMatch(new RegExp(`^  files +${ids.length} rows`, 'm'));
    expect(stdout).toMatch(/^copied and checked in [\d.]+ s$/m);
  });

  it('refuses a source behind the schema, and a missing one', async () => {
    const old = join(dir, 'old.db');
    const db = openDatabase(old);
    db.pragma('user_version = 3');
    db.close();
    const fresh = await newDatabase('copy_old');
    await expect(copyMetadata({ from: old, to: fresh.url })).rejects.toThrow(
      new RegExp(`schema version 3, this Trove's is ${SQLITE_SCHEMA_VERSION}: start a gateway`),
    );
    await expect(copyMetadata({ from: join(dir, 'nope.db'), to: fresh.url })).rejects.toThrow(
      CopyRefusedError,
    );
    const { code, stderr } = await cli(['--from', join(dir, 'nope.db'), '--to', fresh.url]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/refused: cannot open/);
  });
});

import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteMetadataStore, migrate, openDatabase } from './sqlite-metadata-store.js';

let dir: string;
let store: SqliteMetadataStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trove-store-'));
  store = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
async function committed(expiresAt: number, nodes = ['node1', 'node2', 'node3']) {
  const id = `file${String(seq++).padStart(18, '0')}`;
  await store.beginUpload({
    id,
    name: 'a.jpg',
    contentType: 'image/jpeg',
    maxDownloads: 3,
    createdAt: 1,
    expiresAt,
    deleteTokenHash: 'h',
    owner: 'gw',
  });
  await store.commitUploads([
    {
      id,
      size: 10,
      sha256: 'x',
      maxDownloads: 3,
      expiresAt,
      replicas: nodes.map((node) => ({ key: id, node, state: 'ok' as const })),
    },
  ]);
  return id;
}

describe('SqliteMetadataStore tombstones', () => {
  it('lists live files past their expiry, and only those', async () => {
    const old = await committed(1000);
    await committed(10_000);
    expect((await store.expiredLiveFiles(5000, 10)).map((f) => f.id)).toEqual([old]);
  });

  it('marks a file deleted once, and keeps the first time and reason', async () => {
    const id = await committed(1000);
    expect(await store.markDeleted(id, 'deleted', 2000)).toBe(true);
    expect(await store.markDeleted(id, 'expired', 3000)).toBe(false);
    const file = await store.getFile(id);
    expect(file).toMatchObject({ deletedAt: 2000, deleteReason: 'deleted' });
    expect(await store.expiredLiveFiles(5000, 10)).toEqual([]);
    expect((await store.counts(3)).objects).toBe(0);
  });

  it('owes deletes until each replica row is forgotten', async () => {
    const id = await committed(1000);
    await store.markDeleted(id, 'expired', 2000);
    expect(await store.tombstonesWithBlobs(1999, 10)).toEqual([]); // grace not over yet
    expect((await store.tombstonesWithBlobs(2000, 10)).map((f) => f.id)).toEqual([id]);
    for (const node of ['node1', 'node2']) await store.forgetReplica(id, node);
    expect((await store.tombstonesWithBlobs(2000, 10)).map((f) => f.id)).toEqual([id]);
    await store.forgetReplica(id, 'node3');
    expect(await store.tombstonesWithBlobs(2000, 10)).toEqual([]);
  });

  it('purges tombstones past retention, with any rows left', async () => {
    const gone = await committed(1000);
    const recent = await committed(1000);
    await store.markDeleted(gone, 'expired', 2000);
    await store.markDeleted(recent, 'expired', 9000);
    expect(await store.purgeTombstones(5000)).toBe(1);
    expect(await store.getFile(gone)).toBeUndefined();
    expect(await store.replicasOf(gone)).toEqual([]);
    expect(await store.getFile(recent)).toBeDefined();
  });

  it('stores the durable download count', async () => {
    const id = await committed(1000);
    await store.setDownloadsUsed(id, 2);
    expect((await store.getFile(id))?.downloadsUsed).toBe(2);
  });
});

describe('SqliteMetadataStore image processing', () => {
  const variant = (name: 'thumb' | 'compressed', sha256 = `sha-${name}`) => ({
    variant: name,
    size: 100,
    width: 256,
    height: 128,
    contentType: 'image/webp',
    sha256,
    createdAt: 5,
  });
  const rows = (id: string, name: string) =>
    ['node1', 'node2', 'node3'].map((node) => ({
      key: `${id}.${name}`,
      node,
      state: 'ok' as const,
    }));

  it('starts images pending and anything else skipped', async () => {
    const image = await committed(10_000);
    expect((await store.getFile(image))?.processing).toBe('pending');
    await store.beginUpload({
      id: 'pdf000000000000000000a',
      name: 'a.pdf',
      contentType: 'application/pdf',
      maxDownloads: 0,
      createdAt: 1,
      expiresAt: 10_000,
      deleteTokenHash: 'h',
      owner: 'gw',
    });
    expect((await store.getFile('pdf000000000000000000a'))?.processing).toBe('skipped');
    expect(await store.beginProcessing('pdf000000000000000000a')).toBeNull();
  });

  it('counts unfinished attempts, and uncounts abandoned ones', async () => {
    const id = await committed(10_000);
    expect(await store.beginProcessing(id)).toBe(1);
    expect(await store.beginProcessing(id)).toBe(2); // the first never finished: the worker died
    await store.abandonProcessing(id);
    expect(await store.beginProcessing(id)).toBe(2);
  });

  it('records variants and their replicas once, however often it runs', async () => {
    const id = await committed(10_000);
    const all = [...rows(id, 'thumb'), ...rows(id, 'compressed')];
    for (let i = 0; i < 2; i++)
      expect(
        await store.completeProcessing(id, [variant('thumb'), variant('compressed')], all),
      ).toBe(true);
    expect((await store.variantsOf(id)).map((v) => [v.variant, v.sha256])).toEqual([
      ['compressed', 'sha-compressed'],
      ['thumb', 'sha-thumb'],
    ]);
    expect(await store.replicasOf(id)).toHaveLength(9);
    expect(await store.getFile(id)).toMatchObject({ processing: 'done', processingAttempts: 0 });
    expect(await store.beginProcessing(id)).toBeNull();
    // Counted as the file's: not under-replicated, deleted with it.
    expect((await store.counts(3)).underReplicated).toBe(0);
  });

  it('fails only a pending file, with its reason', async () => {
    const id = await committed(10_000);
    await store.failProcessing(id, 'corrupt or truncated image: x');
    expect(await store.getFile(id)).toMatchObject({
      processing: 'failed',
      processingError: 'corrupt or truncated image: x',
    });
    const done = await committed(10_000);
    await store.completeProcessing(done, [variant('thumb')], rows(done, 'thumb'));
    await store.failProcessing(done, 'late');
    expect((await store.getFile(done))?.processing).toBe('done');
  });

  it('keeps the rows of variants made for a file deleted meanwhile, for its deletion', async () => {
    const id = await committed(10_000);
    await store.markDeleted(id, 'deleted', 2000);
    expect(await store.completeProcessing(id, [variant('thumb')], rows(id, 'thumb'))).toBe(true);
    expect((await store.tombstonesWithBlobs(3000, 10)).map((f) => f.id)).toEqual([id]);
    expect(await store.completeProcessing('gone00000000000000000a', [], [])).toBe(false);
  });

  it('lists live images still pending from before a time', async () => {
    const old = await committed(10_000);
    const fresh = await committed(10_000);
    const deleted = await committed(10_000);
    await store.markDeleted(deleted, 'deleted', 2);
    const done = await committed(10_000);
    await store.completeProcessing(done, [], []);
    // `committed` creates every file at t = 1.
    expect((await store.pendingProcessing(2, 10)).map((f) => f.id)).toEqual([old, fresh]);
    expect(await store.pendingProcessing(1, 10)).toEqual([]);
  });
});

describe('migration 3', () => {
  it('makes the images of an older database pending and the rest skipped', () => {
    const path = join(dir, 'old.db');
    const db = new Database(path);
    db.exec(
      `CREATE TABLE files (id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0,
         content_type TEXT NOT NULL, sha256 TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,
         max_downloads INTEGER NOT NULL, downloads_used INTEGER NOT NULL DEFAULT 0,
         created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, delete_token_hash TEXT NOT NULL,
         owner TEXT NOT NULL, deleted_at INTEGER, delete_reason TEXT) STRICT;
       CREATE TABLE replicas (key TEXT NOT NULL, file_id TEXT NOT NULL, node TEXT NOT NULL,
         state TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (key, node)) STRICT;
       INSERT INTO files (id, name, content_type, state, max_downloads, created_at, expires_at, delete_token_hash, owner)
         VALUES ('a', 'a.png', 'image/png', 'committed', 0, 1, 9, 'h', 'gw'),
                ('b', 'b.pdf', 'application/pdf', 'committed', 0, 1, 9, 'h', 'gw');
       PRAGMA user_version = 2;`,
    );
    migrate(db);
    expect(
      db.prepare(`SELECT id, processing, processing_attempts AS n FROM files ORDER BY id`).all(),
    ).toEqual([
      { id: 'a', processing: 'pending', n: 0 },
      { id: 'b', processing: 'skipped', n: 0 },
    ]);
    db.close();
  });
});

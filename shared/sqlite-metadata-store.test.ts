import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewUpload } from './metadata-store.js';
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

/** Starts upload `id` (an image, 3 downloads, expiring at 10 s of the epoch) with `o` changed. */
function begin(id: string, o: Partial<NewUpload> = {}): Promise<void> {
  return store.beginUpload({
    id,
    name: 'a.jpg',
    contentType: 'image/jpeg',
    maxDownloads: 3,
    createdAt: 1,
    expiresAt: 10_000,
    deleteTokenHash: 'h',
    owner: 'gw',
    ...o,
  });
}

let seq = 0;
async function committed(expiresAt: number, nodes = ['node1', 'node2', 'node3']) {
  const id = `file${String(seq++).padStart(18, '0')}`;
  await begin(id, { expiresAt });
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

  it('moves the durable download count only from the value the caller read', async () => {
    const id = await committed(1000);
    expect(await store.updateDownloadsUsed(id, 0, 2)).toBe(true);
    expect((await store.getFile(id))?.downloadsUsed).toBe(2);
    // A stale holder that read 1 cannot take the count back (or forward from a wrong base).
    expect(await store.updateDownloadsUsed(id, 1, 1)).toBe(false);
    expect(await store.updateDownloadsUsed(id, 0, 3)).toBe(false);
    expect((await store.getFile(id))?.downloadsUsed).toBe(2);
  });

  it('gives each write of one group commit its own outcome', async () => {
    const a = await committed(1000);
    const b = await committed(1000);
    const outcomes = await Promise.all([
      store.updateDownloadsUsed(a, 0, 1),
      store.updateDownloadsUsed(b, 5, 6),
      store.updateDownloadsUsed(a, 1, 2),
    ]);
    expect(outcomes).toEqual([true, false, true]);
    expect((await store.getFile(a))?.downloadsUsed).toBe(2);
    expect((await store.getFile(b))?.downloadsUsed).toBe(0);
  });
});

describe('SqliteMetadataStore upload states', () => {
  const pending = (id: string) => begin(id);
  const commit = (id: string) =>
    store.commitUploads([
      { id, size: 1, sha256: 'x', maxDownloads: 3, expiresAt: 10_000, replicas: [] },
    ]);

  it('aborts a pending upload, and answers true again for one already aborted', async () => {
    await pending('up-pending');
    expect(await store.abortUpload('up-pending')).toBe(true);
    expect(await store.abortUpload('up-pending')).toBe(true);
    expect((await store.getFile('up-pending'))?.state).toBe('aborted');
  });

  it('refuses to abort an upload that committed, or one that is gone', async () => {
    await pending('up-done');
    await commit('up-done');
    expect(await store.abortUpload('up-done')).toBe(false);
    expect((await store.getFile('up-done'))?.state).toBe('committed');
    expect(await store.abortUpload('no-such-upload')).toBe(false);
  });

  it('refuses to commit an upload a cleanup aborted, with a 503 that says so', async () => {
    await pending('up-late');
    await store.abortUpload('up-late');
    await expect(commit('up-late')).rejects.toMatchObject({ status: 503, code: 'UPLOAD_ABORTED' });
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
    await begin('pdf000000000000000000a', {
      name: 'a.pdf',
      contentType: 'application/pdf',
      maxDownloads: 0,
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

  it('records a first variant without finishing: pending, the attempt ended, the rows kept', async () => {
    const id = await committed(10_000);
    expect(await store.beginProcessing(id)).toBe(1);
    expect(await store.recordVariants(id, [variant('thumb')], rows(id, 'thumb'))).toBe(true);
    expect(await store.getFile(id)).toMatchObject({ processing: 'pending', processingAttempts: 0 });
    expect((await store.variantsOf(id)).map((v) => v.variant)).toEqual(['thumb']);
    expect((await store.replicasOf(id)).filter((r) => r.key === `${id}.thumb`)).toHaveLength(
      rows(id, 'thumb').length,
    );
    expect(await store.recordVariants('gone00000000000000000a', [], [])).toBe(false);
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

describe('SqliteMetadataStore listFiles (admin)', () => {
  /** A file created at `createdAt`; committed unless `state` says otherwise. */
  async function file(
    id: string,
    createdAt: number,
    o: { state?: 'pending' | 'aborted'; expiresAt?: number; max?: number; used?: number } = {},
  ) {
    const expiresAt = o.expiresAt ?? 1_000_000;
    const maxDownloads = o.max ?? 3;
    await begin(id, { name: `${id}.jpg`, maxDownloads, createdAt, expiresAt });
    if (o.state === 'aborted') await store.abortUpload(id);
    if (o.state) return;
    await store.commitUploads([
      { id, size: 1, sha256: 'x', maxDownloads, expiresAt, replicas: [] },
    ]);
    if (o.used) await store.updateDownloadsUsed(id, 0, o.used);
  }
  const ids = (files: { id: string }[]) => files.map((f) => f.id);

  it('pages newest first by (created_at, id), ties included, without gaps or repeats', async () => {
    // Three files share one created_at: the id breaks the tie.
    for (const [id, at] of [
      ['a', 10],
      ['b', 20],
      ['c', 20],
      ['d', 20],
      ['e', 30],
    ] as const)
      await file(id, at);
    const seen: string[] = [];
    let after: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await store.listFiles({ now: 0, limit: 2, after });
      if (page.length === 0) break;
      seen.push(...ids(page));
      const last = page.at(-1)!;
      after = { createdAt: last.createdAt, id: last.id };
    }
    expect(seen).toEqual(['e', 'd', 'c', 'b', 'a']);
  });

  it('filters by status as GET /files/:id decides it, and by expiring soon', async () => {
    const now = 500_000;
    await file('pending1', 1, { state: 'pending' });
    await file('aborted1', 2, { state: 'aborted' });
    await file('active1', 3, { expiresAt: now + 60_000 });
    await file('active2', 4, { expiresAt: now + 3_600_000, max: 0, used: 9 });
    await file('used1', 5, { max: 2, used: 2 });
    await file('expired1', 6, { expiresAt: now - 1 });
    await file('deleted1', 7);
    await store.markDeleted('deleted1', 'deleted', now);
    const q = (status?: any, expiringBefore?: number) =>
      store.listFiles({ now, limit: 100, status, expiringBefore }).then(ids);
    expect(await q('pending')).toEqual(['pending1']);
    expect(await q('aborted')).toEqual(['aborted1']);
    expect(await q('active')).toEqual(['active2', 'active1']);
    expect(await q('exhausted')).toEqual(['used1']);
    expect(await q('expired')).toEqual(['expired1']);
    expect(await q('deleted')).toEqual(['deleted1']);
    expect(await q()).toHaveLength(7);
    // Expiring within a minute: live files only (not the expired one, not the tombstone).
    expect(await q(undefined, now + 60_000)).toEqual(['active1']);
    expect(await q('active', now + 7_200_000)).toEqual(['active2', 'active1']);
    expect(await q('exhausted', now + 60_000)).toEqual([]);
  });
});

describe('SqliteMetadataStore upload links', () => {
  it('counts the files of a link that were not aborted, deleted ones included', async () => {
    const upload = (id: string, uploadLink?: string) =>
      begin(id, { expiresAt: Date.now() + 60_000, uploadLink });
    await upload('link-a-kept', 'L1');
    await upload('link-a-pending', 'L1');
    await upload('link-a-aborted', 'L1');
    await upload('link-b', 'L2');
    await upload('no-link');
    await store.commitUploads([
      { id: 'link-a-kept', size: 1, sha256: 'x', maxDownloads: 3, expiresAt: 9e12, replicas: [] },
    ]);
    await store.markDeleted('link-a-kept', 'deleted', Date.now());
    await store.abortUpload('link-a-aborted');
    expect(await store.countLinkUploads('L1')).toBe(2);
    expect(await store.countLinkUploads('L2')).toBe(1);
    expect(await store.countLinkUploads('L3')).toBe(0);
  });
});

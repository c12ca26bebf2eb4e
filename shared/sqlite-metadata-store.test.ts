import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteMetadataStore, openDatabase } from './sqlite-metadata-store.js';

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

import { mkdtempSync, rmSync } from 'node:fs';
import { seedLayout } from '../shared/layout.js';
import { fixedLayout } from '../shared/layout-watcher.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NodeAddress } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import type { NodeClient } from '../shared/node-client.js';
import type { ListedBlob } from '../shared/node-protocol.js';
import { SqliteMetadataStore, openDatabase } from '../shared/sqlite-metadata-store.js';
import { AntiEntropy } from './anti-entropy.js';

const node: NodeAddress = { id: 'node1', url: 'http://127.0.0.1:9001' };
const log = createLogger('test', 'silent');
const SHA = 'a'.repeat(64);

let dir: string;
let store: SqliteMetadataStore;
let seq = 0;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trove-anti-entropy-'));
  store = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A committed upload whose copy on node1 is recorded `ok`. */
async function committed(): Promise<string> {
  const id = `ae${String(seq++).padStart(20, '0')}`;
  const now = Date.now();
  await store.beginUpload({
    id,
    name: 'a.jpg',
    contentType: 'image/jpeg',
    maxDownloads: 0,
    createdAt: now,
    expiresAt: now + 3_600_000,
    deleteTokenHash: 'h',
    owner: 'gw',
  });
  await store.commitUploads([
    {
      id,
      size: 10,
      sha256: SHA,
      maxDownloads: 0,
      expiresAt: now + 3_600_000,
      replicas: [{ key: id, node: node.id, state: 'ok' }],
    },
  ]);
  return id;
}

const listed = (key: string): ListedBlob => ({ key, size: 10, sha256: SHA, mtimeMs: Date.now() });

/**
 * Anti-entropy of node1 through `listBlobs` (and `staging`, its staged files;
 * none by default); the keys whose repair it queued go into `repairs`.
 */
function checker(
  listBlobs: (n: NodeAddress, after?: string) => Promise<unknown>,
  repairs: string[],
  staging: Pick<NodeClient, 'listStaged' | 'deleteStaged'> = {
    listStaged: async () => [],
    deleteStaged: async () => false,
  },
) {
  return new AntiEntropy({
    store,
    client: { listBlobs, ...staging } as unknown as NodeClient,
    layout: fixedLayout(seedLayout([node])),
    log,
    orphanGraceMs: 3_600_000,
    repair: async (_fileId, key) => void repairs.push(key),
  });
}

describe('AntiEntropy', () => {
  it('marks a copy absent from the listing missing and queues its repair', async () => {
    const present = await committed();
    const gone = await committed();
    const repairs: string[] = [];
    const check = checker(async () => ({ blobs: [listed(present)], next: null }), repairs);
    expect(await check.check(node)).toMatchObject({ listed: 1, missing: 1 });
    expect(repairs).toEqual([gone]);
    expect((await store.replicasOf(present))[0]!.state).toBe('ok');
    expect((await store.replicasOf(gone))[0]!.state).toBe('missing');
  });

  it('deletes staged files of uploads that have no row, once older than the grace', async () => {
    const now = Date.now();
    await store.createResumable({
      id: 'live-upload',
      fileId: 'AAAAAAAAAAAAAAAAAAAAAA',
      name: 'a.jpg',
      length: 10,
      maxDownloads: 0,
      ttlSeconds: 60,
      metadata: {},
      client: '127.0.0.1',
      uploadLink: null,
      createdAt: now,
      expiresAt: now + 3_600_000,
    });
    const old = now - 2 * 3_600_000;
    const staged = [
      { key: 'BBBBBBBBBBBBBBBBBBBBBB.tus-gone-upload', size: 5, mtimeMs: old },
      { key: 'AAAAAAAAAAAAAAAAAAAAAA.tus-live-upload', size: 5, mtimeMs: old },
      { key: 'CCCCCCCCCCCCCCCCCCCCCC.tus-new-upload', size: 5, mtimeMs: now },
    ];
    const deleted: string[] = [];
    const check = checker(async () => ({ blobs: [], next: null }), [], {
      listStaged: async () => staged,
      deleteStaged: async (_n, key) => deleted.push(key) > 0,
    });
    expect(await check.check(node, now)).toMatchObject({ orphansRemoved: 1 });
    expect(deleted).toEqual(['BBBBBBBBBBBBBBBBBBBBBB.tus-gone-upload']);
  });

  it('leaves alone an upload committed while the listing ran (its blob came after its page)', async () => {
    const old = await committed();
    let during: string | undefined;
    const repairs: string[] = [];
    // The node's listing is read page by page; an upload commits between two pages.
    const check = checker(async (_n, after) => {
      if (after === undefined) return { blobs: [listed(old)], next: old };
      during = await committed();
      return { blobs: [], next: null };
    }, repairs);
    expect(await check.check(node)).toMatchObject({ missing: 0 });
    expect(repairs).toEqual([]);
    expect((await store.replicasOf(during!))[0]!.state).toBe('ok');
  });
});

describe('AntiEntropy beside another check of the same node', () => {
  it('leaves alone a copy repaired while its listing ran (no second repair)', async () => {
    const lost = await committed();
    const repairs: string[] = [];
    // Another worker's check of node1 finds the copy gone and has it repaired while this
    // check's listing, taken before the copy landed, is in flight.
    const check = checker(async () => {
      await new Promise((r) => setTimeout(r, 5));
      await store.setReplicaState(lost, node.id, 'missing');
      await new Promise((r) => setTimeout(r, 5));
      await store.setReplicaState(lost, node.id, 'ok');
      return { blobs: [], next: null };
    }, repairs);
    expect(await check.check(node)).toMatchObject({ missing: 0 });
    expect(repairs).toEqual([]);
    expect((await store.replicasOf(lost))[0]!.state).toBe('ok');
  });

  it('does not mark ok a copy found missing again since its rows were read', async () => {
    const lost = await committed();
    await store.setReplicaState(lost, node.id, 'missing');
    const repairs: string[] = [];
    // The listing shows the copy (repaired); by the time it is compared, a download found it gone again.
    const check = checker(async () => {
      await new Promise((r) => setTimeout(r, 5));
      await store.setReplicaState(lost, node.id, 'corrupt');
      return { blobs: [listed(lost)], next: null };
    }, repairs);
    expect(await check.check(node)).toMatchObject({ recovered: 0 });
    expect((await store.replicasOf(lost))[0]!.state).toBe('corrupt');
  });
});

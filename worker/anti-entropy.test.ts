import { mkdtempSync, rmSync } from 'node:fs';
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

/** Anti-entropy of node1 through `listBlobs`; the keys whose repair it queued go into `repairs`. */
function checker(
  listBlobs: (n: NodeAddress, after?: string) => Promise<unknown>,
  repairs: string[],
) {
  return new AntiEntropy({
    store,
    client: { listBlobs } as unknown as NodeClient,
    nodes: [node],
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

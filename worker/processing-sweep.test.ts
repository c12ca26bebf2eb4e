import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AmqpClient } from '../shared/amqp.js';
import { topologyNames } from '../shared/jobs.js';
import { createLogger } from '../shared/logger.js';
import { SqliteMetadataStore, openDatabase } from '../shared/sqlite-metadata-store.js';
import { ProcessingSweep } from './processing-sweep.js';

let dir: string;
let store: SqliteMetadataStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trove-psweep-'));
  store = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function committed(id: string, contentType: string, createdAt: number) {
  await store.beginUpload({
    id,
    name: 'f',
    contentType,
    maxDownloads: 0,
    createdAt,
    expiresAt: 1e13,
    deleteTokenHash: 'h',
    owner: 'gw',
  });
  await store.commitUploads([
    { id, size: 1, sha256: 'x', maxDownloads: 0, expiresAt: 1e13, replicas: [] },
  ]);
}

describe('ProcessingSweep', () => {
  it('queues the images still pending after the stale time, and only those', async () => {
    const published: [string, object][] = [];
    const amqp = {
      names: topologyNames('t'),
      publish: async (queue: string, body: object) => void published.push([queue, body]),
    } as unknown as AmqpClient;
    const sweep = new ProcessingSweep({
      store,
      amqp,
      log: createLogger('test', 'silent'),
      staleMs: 60_000,
    });
    await committed('old000000000000000000a', 'image/png', 1_000);
    await committed('new000000000000000000a', 'image/png', 100_000);
    await committed('pdf000000000000000000a', 'application/pdf', 1_000);
    expect(await sweep.run(120_000)).toBe(1);
    expect(published).toEqual([['t.images.process', { fileId: 'old000000000000000000a' }]]);
  });
});

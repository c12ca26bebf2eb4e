/**
 * The status and body of a PUT /blobs/:key that ends the chain, for each way
 * the node's own write can end: the report every time, with the status of the
 * node's failure when it did not store the blob.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChecksumMismatchError, InsufficientStorageError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import type { NodeClient } from '../shared/node-client.js';
import { createApp } from './app.js';
import type { StagingStore } from './staging-store.js';
import type { BlobStore } from './blob-store.js';

const SECRET = 'test-secret';
const SHA = 'a'.repeat(64);

/** PUTs to a node whose store answers `put` as `put` does. */
async function putTo(put: BlobStore['put']) {
  const store = { put } as unknown as BlobStore;
  const app = createApp({
    id: 'n1',
    secret: SECRET,
    store,
    client: {} as NodeClient,
    staging: {} as StagingStore,
    log: createLogger('node-test', 'silent'),
  });
  const res = await app.request(
    '/blobs/k',
    { method: 'PUT', headers: { authorization: `Bearer ${SECRET}` } },
    { incoming: Readable.from([Buffer.from('abc')]) },
  );
  return { status: res.status, body: await res.json() };
}

describe('PUT /blobs/:key', () => {
  it('answers 201 with the report when the node stored the blob', async () => {
    const answer = await putTo(async (key) => ({ key, size: 3, sha256: SHA, mtimeMs: 0 }));
    expect(answer).toEqual({
      status: 201,
      body: { key: 'k', replicas: [{ node: 'n1', ok: true, sha256: SHA, size: 3 }] },
    });
  });

  it.each([
    [422, new ChecksumMismatchError(SHA, 'b'.repeat(64))],
    [507, new InsufficientStorageError()],
    [500, Object.assign(new Error('disk on fire'), { code: 'EIO' })],
  ])('answers %i with the report when the write failed so', async (status, err) => {
    const answer = await putTo(async () => {
      throw err;
    });
    const code = (err as { code?: string }).code;
    expect(answer).toEqual({
      status,
      body: {
        key: 'k',
        replicas: [{ node: 'n1', ok: false, code, error: `${code}: ${err.message}` }],
      },
    });
  });
});

describe('HEAD /blobs/:key', () => {
  /** A node whose store knows `k` on disk and fails the test if the blob is read. */
  function nodeWithBlob() {
    const store = {
      statOnDisk: async (key: string) =>
        key === 'k' ? { key, size: 3, sha256: SHA, mtimeMs: 0 } : undefined,
      get: async () => {
        throw new Error('HEAD read the blob');
      },
    } as unknown as BlobStore;
    return createApp({
      id: 'n1',
      secret: SECRET,
      store,
      client: {} as NodeClient,
      staging: {} as StagingStore,
      log: createLogger('node-test', 'silent'),
    });
  }
  const head = (app: ReturnType<typeof createApp>, key: string) =>
    app.request(`/blobs/${key}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${SECRET}` },
    });

  it('answers from the file on disk, without reading the blob', async () => {
    const res = await head(nodeWithBlob(), 'k');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('3');
    expect(res.headers.get('x-trove-sha256')).toBe(SHA);
  });

  it('answers 404 for a blob it does not have', async () => {
    expect((await head(nodeWithBlob(), 'other')).status).toBe(404);
  });
});

describe('DELETE /blobs/:key', () => {
  it('answers 204 when it removed the blob, a JSON 404 naming the key otherwise', async () => {
    const store = { delete: async (key: string) => key === 'k' } as unknown as BlobStore;
    const app = createApp({
      id: 'n1',
      secret: SECRET,
      store,
      client: {} as NodeClient,
      staging: {} as StagingStore,
      log: createLogger('node-test', 'silent'),
    });
    const del = (key: string) =>
      app.request(`/blobs/${key}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${SECRET}` },
      });
    expect((await del('k')).status).toBe(204);
    const missing = await del('other');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      error: { code: 'NO_SUCH_BLOB', message: 'no blob other' },
    });
  });
});

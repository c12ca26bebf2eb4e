/**
 * The node's staging routes through createApp, with a real FsBlobStore and
 * StagingStore in a temp directory (no successor: a chain of one): a part
 * written and committed into a blob, and each malformed request answered
 * with a 4xx JSON error that names the problem, nothing written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../shared/logger.js';
import type { NodeClient } from '../shared/node-client.js';
import { createApp } from './app.js';
import { FsBlobStore } from './blob-store.js';
import { StagingStore } from './staging-store.js';

const SECRET = 'test-secret';
const auth = { authorization: `Bearer ${SECRET}` };
const log = createLogger('node-test', 'silent');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const KEY = 'AAAAAAAAAAAAAAAAAAAAAA.tus-upload1';

let dir: string;
let blobs: FsBlobStore;
let app: ReturnType<typeof createApp>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trove-staging-routes-'));
  blobs = await FsBlobStore.open(dir);
  app = createApp({
    id: 'n1',
    secret: SECRET,
    store: blobs,
    staging: await StagingStore.open(dir, blobs, log),
    client: {} as NodeClient,
    log,
  });
});

afterEach(async () => {
  await blobs.close();
  await rm(dir, { recursive: true, force: true });
});

const put = (offset: string, data: Buffer, headers: Record<string, string> = {}) =>
  app.request(
    `/staging/${KEY}?offset=${offset}`,
    {
      method: 'PUT',
      headers: { ...auth, 'content-length': String(data.length), ...headers },
    },
    { incoming: Readable.from([data]) },
  );

const commit = (body: unknown) =>
  app.request(`/staging/${KEY}/commit`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('staging routes', () => {
  it('writes parts, commits them into a blob, lists and deletes', async () => {
    const a = randomBytes(1000);
    const b = randomBytes(500);
    const first = await put('0', a);
    expect(first.status).toBe(201);
    expect(await first.json()).toEqual({
      key: KEY,
      replicas: [{ node: 'n1', ok: true, size: 1000, sha256: sha256(a) }],
    });
    expect((await put('1000', b)).status).toBe(201);
    const listing = await app.request('/staging', { headers: auth });
    expect(await listing.json()).toEqual({
      staged: [{ key: KEY, size: 1500, mtimeMs: expect.any(Number) as number }],
    });
    const parts = [
      { offset: 0, size: 1000, sha256: sha256(a) },
      { offset: 1000, size: 500, sha256: sha256(b) },
    ];
    const done = await commit({ blob: 'file1', parts });
    expect(done.status).toBe(201);
    expect(await done.json()).toEqual({
      node: 'n1',
      key: 'file1',
      size: 1500,
      sha256: sha256(Buffer.concat([a, b])),
    });
    expect((await blobs.stat('file1'))?.size).toBe(1500);
    // Nothing staged any more.
    const del = await app.request(`/staging/${KEY}`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(404);
    expect(((await del.json()) as { error: { code: string } }).error.code).toBe('NO_SUCH_STAGING');
  });

  it('answers a gap and a commit that does not match with 409 and what the node holds', async () => {
    const gap = await put('10', Buffer.from('late'));
    expect(gap.status).toBe(409);
    expect(await gap.json()).toMatchObject({
      replicas: [{ node: 'n1', ok: false, code: 'STAGING_GAP' }],
    });
    await put('0', Buffer.from('abc'));
    const wrong = await commit({
      blob: 'file2',
      parts: [{ offset: 0, size: 3, sha256: sha256(Buffer.from('abd')) }],
    });
    expect(wrong.status).toBe(409);
    expect(await wrong.json()).toMatchObject({ error: { code: 'STAGING_MISMATCH' }, have: 0 });
    expect(await blobs.stat('file2')).toBeUndefined();
  });

  it('refuses malformed requests with a 4xx that names the problem', async () => {
    const cases: [Response | Promise<Response>, number, RegExp][] = [
      [put('-1', Buffer.from('x')), 400, /offset/],
      [put('abc', Buffer.from('x')), 400, /offset/],
      [put('0', Buffer.from('x'), { 'x-trove-sha256': 'a'.repeat(64) }), 400, /sha256/],
      [commit('not json'), 400, /JSON/],
      [commit({ blob: 'file3', parts: [] }), 400, /parts/],
      [
        commit({
          blob: 'file3',
          parts: [
            { offset: 0, size: 3, sha256: 'a'.repeat(64) },
            { offset: 5, size: 3, sha256: 'a'.repeat(64) },
          ],
        }),
        400,
        /follow each other/,
      ],
      [
        commit({ blob: 'bad key!', parts: [{ offset: 0, size: 1, sha256: 'a'.repeat(64) }] }),
        400,
        /blob/,
      ],
      [
        app.request(`/staging/${KEY}/cut?offset=x`, { method: 'POST', headers: auth }),
        400,
        /offset/,
      ],
      [app.request('/staging', {}), 401, /./],
    ];
    for (const [pending, status, message] of cases) {
      const res = await pending;
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
    }
    expect(await (await app.request('/staging', { headers: auth })).json()).toEqual({ staged: [] });
  });
});

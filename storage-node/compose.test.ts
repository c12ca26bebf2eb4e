/**
 * POST /blobs/:key/compose against a real FsBlobStore in a temp directory,
 * the node listening on a free port (a large blob's GET writes to the socket
 * itself): the composed blob is the parts' concatenation, stored as a PUT
 * stores it; a missing or corrupt part, a bad body or a wrong sha256 stores
 * nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ServerType } from '@hono/node-server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { close, listen } from '../shared/http.js';
import { ClientGoneError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import type { NodeClient } from '../shared/node-client.js';
import { createApp } from './app.js';
import { FsBlobStore } from './blob-store.js';
import { composeBlob } from './compose.js';
import { StagingStore } from './staging-store.js';
import { NodeMetrics } from './metrics.js';

const SECRET = 'test-secret';
const auth = { authorization: `Bearer ${SECRET}` };
const log = createLogger('node-test', 'silent');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let dir: string;
let store: FsBlobStore;
let metrics: NodeMetrics;
let server: ServerType;
let base: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trove-compose-'));
  store = await FsBlobStore.open(dir);
  metrics = new NodeMetrics({ store });
  const app = createApp({
    id: 'n1',
    secret: SECRET,
    store,
    staging: await StagingStore.open(dir, store, log),
    client: {} as NodeClient,
    log,
    metrics,
  });
  server = await listen(app, '127.0.0.1', 0);
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterEach(async () => {
  await close(server, 1000);
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Three parts: over 1 MiB (with block sums), small, and a few blocks. */
async function putParts(): Promise<{ keys: string[]; whole: Buffer }> {
  const datas = [randomBytes(1024 * 1024 + 12345), randomBytes(1000), randomBytes(3_500_000)];
  const keys = datas.map((_, i) => `file1.part-${i}-abc`);
  // Streamed, as a part written by a PUT is.
  for (const [i, data] of datas.entries()) await store.put(keys[i]!, Readable.from([data]));
  return { keys, whole: Buffer.concat(datas) };
}

function compose(key: string, body: unknown) {
  return fetch(base + `/blobs/${key}/compose`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function getBlob(key: string): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(base + `/blobs/${key}`, { headers: auth });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** Flips one byte of a stored blob's file, at `offset`. */
async function flipByte(key: string, offset: number): Promise<void> {
  const info = (await store.stat(key))!;
  const file = await open(store.pathOf(info), 'r+');
  try {
    const buf = Buffer.alloc(1);
    await file.read(buf, 0, 1, offset);
    buf[0] = buf[0]! ^ 0xff;
    await file.write(buf, 0, 1, offset);
  } finally {
    await file.close();
  }
}

/** Nothing stored under `key`, and no temp file left behind. */
async function expectNothingStored(key: string): Promise<void> {
  expect(await store.stat(key)).toBeUndefined();
  expect((await getBlob(key)).status).toBe(404);
  expect(await readdir(join(dir, 'tmp'))).toEqual([]);
}

describe('POST /blobs/:key/compose', () => {
  it('stores the concatenation of the parts, as a PUT of it would', async () => {
    const { keys, whole } = await putParts();
    const res = await compose('file1', { parts: keys });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({
      node: 'n1',
      key: 'file1',
      size: whole.length,
      sha256: sha256(whole),
    });
    const read = await getBlob('file1');
    expect(read.status).toBe(200);
    expect(read.bytes.equals(whole)).toBe(true);
    // Block sums written as by a PUT: a range reads verified before send.
    const range = await fetch(base + '/blobs/file1', {
      headers: { ...auth, range: 'bytes=3000000-3000009' },
    });
    expect(range.status).toBe(206);
    expect(range.headers.get('x-trove-verified')).toBe('before-send');
    expect(Buffer.from(await range.arrayBuffer()).equals(whole.subarray(3000000, 3000010))).toBe(
      true,
    );
    // The parts stay: the gateway deletes them.
    for (const key of keys) expect(await store.stat(key)).toBeDefined();
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    const text = await (await fetch(base + '/metrics')).text();
    expect(text).toContain('trove_node_blobs_composed_total 1');
    expect(text).toContain(`trove_node_blob_bytes_composed_total ${whole.length}`);
    expect(text).toMatch(/trove_http_requests_total\{[^}]*route="\/blobs\/:key\/compose"/);
  });

  it('composes again to the same blob (idempotent), and checks a given sha256', async () => {
    const { keys, whole } = await putParts();
    const first = await (await compose('file1', { parts: keys })).json();
    const again = await compose('file1', { parts: keys, sha256: sha256(whole) });
    expect(again.status).toBe(201);
    expect(await again.json()).toEqual(first);
    expect((await getBlob('file1')).bytes.equals(whole)).toBe(true);
    expect((await store.usage()).objects).toBe(4);
  });

  it('answers 409 with every missing part, and stores nothing', async () => {
    const { keys } = await putParts();
    const res = await compose('file1', { parts: [keys[0], 'file1.part-9-x', keys[1], 'nope'] });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: { code: 'MISSING_PARTS', message: expect.stringContaining('file1.part-9-x') },
      missing: ['file1.part-9-x', 'nope'],
    });
    await expectNothingStored('file1');
  });

  it.each([
    ['a small part', 1, 10],
    ['the first block of a large part', 0, 10],
    ['a later block of a large part', 2, 3_000_000],
  ])(
    'composes a part that rotted (%s) into a blob with another sha256, never served as good',
    async (_, i, at) => {
      const { keys, whole } = await putParts();
      await flipByte(keys[i]!, at);
      // Parts are read as stored (one sha256 pass): the rot shows in the result's sha256,
      // which the gateway compares across nodes, and a read of it never passes as good.
      const res = await compose('file1', { parts: keys });
      expect(res.status).toBe(201);
      const answer = (await res.json()) as { sha256: string };
      expect(answer.sha256).not.toBe(sha256(whole));
      const read = await getBlob('file1').catch(() => ({ status: 0, bytes: Buffer.alloc(0) }));
      expect(read.bytes.equals(whole)).toBe(false);
    },
  );

  it('keeps the previous blob when a compose fails', async () => {
    const { keys, whole } = await putParts();
    await compose('file1', { parts: keys });
    const res = await compose('file1', { parts: keys, sha256: 'b'.repeat(64) });
    expect(res.status).toBe(422);
    expect((await getBlob('file1')).bytes.equals(whole)).toBe(true);
  });

  it("reuses the parts' block digests when they end on block boundaries, else computes them", async () => {
    const aligned = [randomBytes(2 * 1024 * 1024), randomBytes(1024 * 1024), randomBytes(300_000)];
    for (const [i, data] of aligned.entries())
      await store.put(`a.part-${i}`, Readable.from([data]));
    const whole = Buffer.concat(aligned);
    const res = await compose('file2', { parts: aligned.map((_, i) => `a.part-${i}`) });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ sha256: sha256(whole), size: whole.length });
    // The sums are right: a ranged read of every block verifies.
    for (let at = 0; at < whole.length; at += 1024 * 1024) {
      const part = await fetch(base + '/blobs/file2', {
        headers: { ...auth, range: `bytes=${at}-${at + 99}` },
      });
      expect(Buffer.from(await part.arrayBuffer()).equals(whole.subarray(at, at + 100))).toBe(true);
    }
    expect((await store.blockDigests('file2'))?.length).toBe(4);
  });

  it('composes through a part whose block sums rotted (its digests are computed instead)', async () => {
    const { keys, whole } = await putParts();
    const info = (await store.stat(keys[2]!))!;
    const sums = await open(store.sumsPathOf(info), 'r+');
    await sums.write(Buffer.from([0xff, 0x00, 0xff]), 0, 3, 52 + 32 * 2);
    await sums.close();
    expect(await store.blockDigests(keys[2]!)).toBeUndefined();
    const res = await compose('file1', { parts: keys });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ sha256: sha256(whole) });
    expect((await getBlob('file1')).bytes.equals(whole)).toBe(true);
  });

  it('refuses a wrong sha256 with 422 SHA256_MISMATCH, and stores nothing', async () => {
    const { keys } = await putParts();
    const res = await compose('file1', { parts: keys, sha256: 'a'.repeat(64) });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ error: { code: 'SHA256_MISMATCH' } });
    await expectNothingStored('file1');
  });

  it.each([
    ['not JSON', '{parts', 'INVALID_JSON', /JSON/],
    ['no parts', {}, 'INVALID_PARAMETER', /parts/],
    ['empty parts', { parts: [] }, 'INVALID_PARAMETER', /parts/],
    ['a bad key', { parts: ['ok', '../etc'] }, 'INVALID_PARAMETER', /parts\.1: not a valid key/],
    ['a bad sha256', { parts: ['a'], sha256: 'XYZ' }, 'INVALID_PARAMETER', /sha256/],
    ['an unknown field', { parts: ['a'], sha: 'x' }, 'INVALID_PARAMETER', /sha/],
    ['the target among the parts', { parts: ['a', 'file1'] }, 'BAD_REQUEST', /file1/],
    [
      'too many parts',
      { parts: Array.from({ length: 10_001 }, (_, i) => `p${i}`) },
      'INVALID_PARAMETER',
      /parts/,
    ],
  ])('answers 400 for %s', async (_, body, code, message) => {
    const res = await compose('file1', body);
    expect(res.status).toBe(400);
    const answer = (await res.json()) as { error: { code: string; message: string } };
    expect(answer.error.code).toBe(code);
    expect(answer.error.message).toMatch(message);
    await expectNothingStored('file1');
  });

  it('takes the largest body there can be (10000 keys of 160 characters), refuses more', async () => {
    const parts = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(160, 'p'));
    const res = await compose('file1', { parts });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { missing: string[] }).missing).toEqual(parts);
    const tooLarge = await compose('file1', { parts: [...parts, ...parts] });
    expect(tooLarge.status).toBe(413);
  });

  it('stops and leaves nothing when its caller goes away mid-compose', async () => {
    const { keys } = await putParts();
    const gone = new AbortController();
    // Aborts once the first part has started flowing into the write.
    const watched = Object.create(store) as FsBlobStore;
    watched.readRaw = (key) => {
      if (key === keys[1]) gone.abort('Client connection prematurely closed.');
      return store.readRaw(key);
    };
    const composing = composeBlob({ store: watched, log }, 'file1', keys, { signal: gone.signal });
    await expect(composing).rejects.toBeInstanceOf(ClientGoneError);
    await expectNothingStored('file1');
  });

  it('answers 400 for a bad target key, 401 without the secret', async () => {
    expect((await compose('a$b', { parts: ['a'] })).status).toBe(400);
    const res = await fetch(base + '/blobs/file1/compose', {
      method: 'POST',
      body: JSON.stringify({ parts: ['a'] }),
    });
    expect(res.status).toBe(401);
  });
});

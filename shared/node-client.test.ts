/**
 * The node client's read accounting, its pools and its compose, against a real storage
 * node app (storage-node/app.ts over an FsBlobStore) listening in this
 * process on a free port.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ServerType } from '@hono/node-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../storage-node/app.js';
import { StagingStore } from '../storage-node/staging-store.js';
import { FsBlobStore } from '../storage-node/blob-store.js';
import type { NodeAddress } from './config.js';
import { close, listen } from './http.js';
import { createLogger } from './logger.js';
import { NodeBusyError, NodeClient, NodeHttpError, type NodeClientOptions } from './node-client.js';

const SECRET = randomBytes(24).toString('hex');
/** Larger than every socket buffer between here and the node: an unread body keeps its connection busy. */
const BIG = randomBytes(24 * 1024 * 1024);
const KEY = 'big-blob';

let dir: string;
let server: ServerType;
let node: NodeAddress;
const clients: NodeClient[] = [];
const bodies: Readable[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trove-node-client-'));
  const log = createLogger('node-test', 'silent');
  const store = await FsBlobStore.open(dir);
  const client = new NodeClient({ secret: SECRET, timeoutMs: 5000 });
  clients.push(client);
  server = await listen(
    createApp({
      id: 'n1',
      secret: SECRET,
      store,
      staging: await StagingStore.open(dir, store, log),
      client,
      log,
    }),
    '127.0.0.1',
    0,
  );
  const { port } = server.address() as { port: number };
  node = { id: 'n1', url: `http://127.0.0.1:${port}` };
  await client.putBlob(node, KEY, BIG, { chain: [], hop: 0 });
});

afterEach(() => {
  for (const body of bodies.splice(0)) body.destroy();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  if (server) await close(server, 1000);
  await rm(dir, { recursive: true, force: true });
});

function newClient(o: Partial<NodeClientOptions> = {}): NodeClient {
  const client = new NodeClient({ secret: SECRET, timeoutMs: 5000, ...o });
  clients.push(client);
  return client;
}

/** Opens a read of the big blob and leaves its body unread: it holds its connection. */
async function stalledRead(client: NodeClient): Promise<Readable> {
  const res = await client.getBlob(node, KEY);
  expect(res.statusCode).toBe(200);
  res.body.on('error', () => undefined);
  bodies.push(res.body);
  return res.body;
}

/** `promise`, or a failure naming `what` once `ms` have passed. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} is still waiting after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

const closed = (body: Readable) =>
  new Promise<void>((resolve) => (body.closed ? resolve() : body.once('close', resolve)));

describe('NodeClient read accounting', () => {
  it('counts a read from dispatch until its body has been read to the end', async () => {
    const client = newClient({ readConnections: 4 });
    const pending = client.getBlob(node, KEY);
    expect(client.readsInFlight(node)).toBe(1); // already at dispatch, before the answer
    const res = await pending;
    let size = 0;
    for await (const chunk of res.body) {
      expect(client.readsInFlight(node)).toBe(1);
      size += (chunk as Buffer).length;
    }
    expect(size).toBe(BIG.length);
    await closed(res.body);
    expect(client.readsInFlight(node)).toBe(0);
  });

  it('ends the count when the body is destroyed part way', async () => {
    const client = newClient({ readConnections: 4 });
    const body = await stalledRead(client);
    await stalledRead(client);
    expect(client.readsInFlight(node)).toBe(2);
    body.destroy();
    await closed(body);
    expect(client.readsInFlight(node)).toBe(1);
  });

  it('ends the count of an answer that is dumped (a 404) and of a request that fails', async () => {
    const client = newClient({ readConnections: 4 });
    const res = await client.getBlob(node, 'no-such-blob');
    expect(res.statusCode).toBe(404);
    await res.body.dump();
    expect(client.readsInFlight(node)).toBe(0);

    const down: NodeAddress = { id: 'down', url: 'http://127.0.0.1:1' };
    await expect(client.getBlob(down, KEY)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(client.readsInFlight(down)).toBe(0);

    const aborted = new AbortController();
    const pending = client.getBlob(node, KEY, { signal: aborted.signal });
    aborted.abort();
    await expect(pending).rejects.toThrow();
    expect(client.readsInFlight(node)).toBe(0);
  });

  it('refuses a read beyond readConnections at once, and takes one again when a read ends', async () => {
    const client = newClient({ readConnections: 2 });
    const first = await stalledRead(client);
    await stalledRead(client);
    expect(client.readsFull(node)).toBe(true);
    const refused = await client.getBlob(node, KEY).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(NodeBusyError);
    expect(refused).toMatchObject({ code: 'NODE_BUSY', node: 'n1' });
    expect(client.readsInFlight(node)).toBe(2);

    first.destroy();
    await closed(first);
    expect(client.readsFull(node)).toBe(false);
    await stalledRead(client);
    expect(client.readsInFlight(node)).toBe(2);
  });

  it('never refuses a read without readConnections (the worker)', async () => {
    const client = newClient({ connections: 1 });
    await stalledRead(client);
    expect(client.readsFull(node)).toBe(false);
    expect(client.readsInFlight(node)).toBe(1);
  });
});

describe('NodeClient pools', () => {
  it('writes and health probes go through while every read connection is held', async () => {
    // As many read connections as write ones: on one shared pool the reads would hold them all.
    const client = newClient({ readConnections: 2, connections: 2 });
    await stalledRead(client);
    await stalledRead(client);

    // Generous for a loaded machine; a write queued behind the reads waits for ever (undici
    // honours neither a timeout nor an AbortSignal before a request reaches a connection).
    const report = await within(
      10_000,
      'a write while every read connection is held',
      client.putBlob(node, 'small-blob', randomBytes(1000), { chain: [], hop: 0 }),
    );
    expect(report.replicas).toMatchObject([{ node: 'n1', ok: true, size: 1000 }]);
    const health = await within(10_000, 'a health probe', client.health(node, 10_000));
    expect(health.id).toBe('n1');
  }, 30_000);
});

describe('NodeClient.compose', () => {
  const parts = [randomBytes(2 * 1024 * 1024 + 7), randomBytes(500)];
  const keys = ['f.part-0-a', 'f.part-1-b'];
  const whole = Buffer.concat(parts);
  const sha256 = createHash('sha256').update(whole).digest('hex');

  beforeAll(async () => {
    const client = newClient();
    for (const [i, part] of parts.entries())
      await client.putBlob(node, keys[i]!, part, { chain: [], hop: 0 });
  });

  it('resolves the composed blob, which reads back as the concatenation', async () => {
    const client = newClient();
    expect(await client.compose(node, 'f', keys, { sha256 })).toEqual({
      ok: true,
      size: whole.length,
      sha256,
    });
    const res = await client.getBlob(node, 'f');
    expect(Buffer.from(await res.body.arrayBuffer()).equals(whole)).toBe(true);
  });

  it('resolves the missing parts, and nothing is stored', async () => {
    const client = newClient();
    expect(await client.compose(node, 'g', [keys[0]!, 'g.part-9-x'])).toEqual({
      ok: false,
      missing: ['g.part-9-x'],
    });
    expect(await client.statBlob(node, 'g')).toBeUndefined();
  });

  it('throws NodeHttpError for another refusal, and transport errors as they come', async () => {
    const client = newClient();
    const refused = await client
      .compose(node, 'h', keys, { sha256: 'a'.repeat(64) })
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(NodeHttpError);
    expect(refused).toMatchObject({ statusCode: 422, message: expect.stringMatching(/SHA256/) });
    const down: NodeAddress = { id: 'down', url: 'http://127.0.0.1:1' };
    await expect(client.compose(down, 'h', keys)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

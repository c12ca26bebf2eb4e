/**
 * The storage nodes' internal API against three real node processes: auth,
 * key validation, chain replication (including a dead successor), checksum
 * checks on write and on read.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { filesUnder, logLines, sha256, startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ noGateway: true });
});
afterAll(async () => {
  await cluster?.stop();
});

const node = (i: number) => cluster.nodes[i]!;
const auth = () => ({ authorization: `Bearer ${cluster.secret}` });
const chainOf = (...idx: number[]) => idx.map((i) => `${node(i).id}=${node(i).url}`).join(',');

async function put(i: number, key: string, data: Buffer, headers: Record<string, string> = {}) {
  const res = await request(`${node(i).url}/blobs/${key}`, {
    method: 'PUT',
    body: data,
    headers: { ...auth(), ...headers },
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

async function blobFiles(i: number, key: string) {
  return (await filesUnder(join(node(i).dataDir, 'blobs'))).filter(
    (f) => f.split('/').pop()!.startsWith(`${key}@`) && !f.endsWith('.blocks'), // not its block sums
  );
}

describe('storage node API', () => {
  it('answers /health without credentials and nothing else', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const health = await request(`${node(0).url}/health`);
    expect(health.statusCode).toBe(200);
    expect(await health.body.json()).toMatchObject({
      id: 'node1',
      objects: expect.any(Number),
      free_bytes: expect.any(Number),
    });

    for (const [method, path] of [
      ['PUT', '/blobs/k1'],
      ['GET', '/blobs/k1'],
      ['HEAD', '/blobs/k1'],
      ['DELETE', '/blobs/k1'],
      ['GET', '/blobs'],
    ] as const) {
      const res = await request(`${node(0).url}${path}`, {
        method,
        body: method === 'PUT' ? 'x' : undefined,
      });
      expect(res.statusCode, `${method} ${path}`).toBe(401);
      await res.body.dump();
      const wrong = await request(`${node(0).url}${path}`, {
        method,
        headers: { authorization: 'Bearer not-the-secret' },
        body: method === 'PUT' ? 'x' : undefined,
      });
      expect(wrong.statusCode, `${method} ${path} with a wrong secret`).toBe(401);
      await wrong.body.dump();
    }
    expect(await blobFiles(0, 'k1')).toEqual([]);
  });

  it('replicates down the chain and reports every node', async () => {
    const data = randomBytes(300_000);
    const { status, body } = await put(0, 'chain-ok', data, { 'x-trove-chain': chainOf(1, 2) });
    expect(status).toBe(201);
    expect(body.replicas).toEqual(
      ['node1', 'node2', 'node3'].map((n) => ({
        node: n,
        ok: true,
        sha256: sha256(data),
        size: data.length,
      })),
    );
    for (const i of [0, 1, 2]) {
      const [file] = await blobFiles(i, 'chain-ok');
      expect(sha256(await readFile(join(node(i).dataDir, 'blobs', file!)))).toBe(sha256(data));
    }
  });

  it('serves verified ranges, lists, and deletes idempotently', async () => {
    const data = randomBytes(1_000_000);
    await put(0, 'ranged', data);
    const part = await request(`${node(0).url}/blobs/ranged`, {
      headers: { ...auth(), range: 'bytes=500000-500099' },
    });
    expect(part.statusCode).toBe(206);
    expect(Buffer.from(await part.body.arrayBuffer()).equals(data.subarray(500000, 500100))).toBe(
      true,
    );

    const list = await request(`${node(0).url}/blobs?limit=1000`, { headers: auth() });
    const page = (await list.body.json()) as any;
    expect(page.blobs).toContainEqual(
      expect.objectContaining({ key: 'ranged', size: data.length, sha256: sha256(data) }),
    );

    const del = () => request(`${node(0).url}/blobs/ranged`, { method: 'DELETE', headers: auth() });
    expect((await del()).statusCode).toBe(204);
    expect((await del()).statusCode).toBe(404);
    expect(await blobFiles(0, 'ranged')).toEqual([]);
  });

  it('skips a dead successor and still reaches the rest of the chain', async () => {
    await cluster.kill('node2');
    try {
      const data = randomBytes(200_000);
      const { status, body } = await put(0, 'skip-dead', data, { 'x-trove-chain': chainOf(1, 2) });
      expect(status).toBe(201);
      expect(body.replicas.map((r: any) => [r.node, r.ok])).toEqual([
        ['node1', true],
        ['node2', false],
        ['node3', true],
      ]);
      expect(await blobFiles(2, 'skip-dead')).toHaveLength(1);
    } finally {
      await cluster.startNode('node2');
    }
  });

  it('stores nothing anywhere when the expected checksum does not match', async () => {
    const data = randomBytes(100_000);
    const { status, body } = await put(0, 'bad-sum', data, {
      'x-trove-chain': chainOf(1, 2),
      'x-trove-sha256': sha256('something else'),
    });
    expect(status).toBe(422);
    expect(body.replicas.every((r: any) => r.ok === false && r.code === 'CHECKSUM_MISMATCH')).toBe(
      true,
    );
    for (const i of [0, 1, 2]) {
      expect(await blobFiles(i, 'bad-sum')).toEqual([]);
      expect(await filesUnder(join(node(i).dataDir, 'tmp'))).toEqual([]);
    }
  });

  it.each([
    ['small, taken whole', 100_000],
    ['large, streamed', 3_000_000],
  ])('stores nothing anywhere of a %s blob whose sender leaves mid-body', async (_, size) => {
    // Half the announced bytes, then the connection closes.
    const socket = connect(node(0).port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      `PUT /blobs/cut-${size} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${cluster.secret}\r\n` +
        `x-trove-chain: ${chainOf(1, 2)}\r\ncontent-length: ${size}\r\n\r\n`,
    );
    socket.write(randomBytes(size / 2));
    // Until node1 has the bytes (and node2 the forwarded ones): a cut now is mid-body.
    await waitFor(
      'the half-body written',
      async () => (await filesUnder(join(node(0).dataDir, 'tmp'))).length > 0 || size === 100_000,
    );
    await new Promise((r) => setTimeout(r, 200));
    socket.destroy();
    for (const i of [0, 1, 2]) {
      await waitFor(
        `node${i + 1} without a temp file`,
        async () => (await filesUnder(join(node(i).dataDir, 'tmp'))).length === 0,
      );
      expect(await blobFiles(i, `cut-${size}`)).toEqual([]);
    }
    // Still up, and storing.
    expect((await put(0, `after-cut-${size}`, randomBytes(1000))).status).toBe(201);
  });

  /** Stores `size` random bytes under `key` on node1, then flips one byte of its file on disk. */
  async function corruptBlob(key: string, size: number): Promise<void> {
    await put(0, key, randomBytes(size));
    const [file] = await blobFiles(0, key);
    const path = join(node(0).dataDir, 'blobs', file!);
    const bytes = await readFile(path);
    bytes[Math.floor(size / 2)]! ^= 0x01;
    await writeFile(path, bytes);
  }

  /** Node1 logged that it quarantined `key`, and moved its file to quarantine/ (not just lost it). */
  async function expectQuarantined(key: string): Promise<void> {
    await waitFor(
      'node1 reporting it',
      async () =>
        logLines(cluster, 'node1', (l) => l.msg === 'corrupt blob quarantined' && l.key === key)
          .length === 1,
    );
    await waitFor('the blob in quarantine/', async () =>
      (await filesUnder(join(node(0).dataDir, 'quarantine'))).some((f) => f.includes(key)),
    );
    expect(await blobFiles(0, key)).toEqual([]);
    const again = await request(`${node(0).url}/blobs/${key}`, { headers: auth() });
    expect(again.statusCode).toBe(404);
    await again.body.dump();
  }

  it('never sends a byte of a small blob with a flipped byte: 404, quarantined', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    await corruptBlob('flip-small', 10_000);
    // Up to 1 MiB a blob is read and checked before its status line.
    const res = await request(`${node(0).url}/blobs/flip-small`, { headers: auth() });
    expect(res.statusCode).toBe(404);
    expect(((await res.body.json()) as any).error.code).toBe('CORRUPT_BLOB');
    await expectQuarantined('flip-small');
  });

  it('cuts a large blob with a flipped byte short of its length, and quarantines it', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const size = 3_000_000;
    await corruptBlob('flip-large', size);
    // A larger blob streams, its last chunk held back until the hash matches: the body ends short.
    const res = await request(`${node(0).url}/blobs/flip-large`, { headers: auth() });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(size));
    let received = 0;
    const read = (async () => {
      for await (const chunk of res.body) received += (chunk as Buffer).length;
    })();
    await expect(read).rejects.toThrow();
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(size);
    await expectQuarantined('flip-large');
  });

  it('refuses bad keys without touching the file system outside the data dir', async () => {
    const outside = join(cluster.dir, 'escape');
    for (const key of [
      '..',
      '.',
      '..%2Fescape',
      '%2e%2e%2fescape',
      'a%2Fb',
      'x'.repeat(500),
      'sp%20ace',
      'semi%3Bcolon',
    ]) {
      const res = await request(`${node(0).url}/blobs/${key}`, {
        method: 'PUT',
        body: 'data',
        headers: auth(),
      });
      expect([400, 404], key).toContain(res.statusCode);
      await res.body.dump();
      const get = await request(`${node(0).url}/blobs/${key}`, { headers: auth() });
      expect([400, 404], key).toContain(get.statusCode);
      await get.body.dump();
    }
    expect(
      await filesUnder(cluster.dir).then((f) => f.filter((p) => p.includes('escape'))),
    ).toEqual([]);
    await expect(readFile(outside)).rejects.toThrow();
  });
});

/**
 * Resumed downloads count once (docs/api.md, "What counts as a download"),
 * against real processes and a real Redis: the real `curl -C -` finishes a
 * download it was cut off from on a file with one download; a browser-style
 * resume (Range + If-Range, with the grant's cookie) from another address
 * takes none; the grant holds across two gateways; it ends with the file;
 * without it (its Redis key gone, no cookie) a resume is a fresh download.
 *
 * Both gateways trust X-Forwarded-For (they listen on loopback), so a request
 * may say which client address it comes from: another address is another
 * client, as a phone that switched networks.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { sha256, startCluster, waitFor, type Cluster } from './harness.js';
import { metricValue, scrape } from './metrics-text.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;

let cluster: Cluster;
let second: string;
let dir: string;
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

beforeAll(async () => {
  cluster = await startCluster({ env: { TRUST_PROXY: 'true' } });
  second = await cluster.startGateway('gateway2');
  dir = mkdtempSync(join(tmpdir(), 'trove-resume-'));
});
afterAll(async () => {
  redis.disconnect();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function showLogsOnFailure() {
  onTestFailed(() => console.log(cluster.logTail()));
}

interface Uploaded {
  id: string;
  delete_token: string;
  bytes: Buffer;
  etag: string;
}

/** Uploads `size` random bytes that sniff as a JPEG. */
async function upload(query: string, size = 64 * 1024): Promise<Uploaded> {
  const bytes = randomBytes(size);
  bytes.set([0xff, 0xd8, 0xff, 0xe0], 0);
  const res = await fetch(`${cluster.gatewayUrl}/upload/p.jpg?${query}`, {
    method: 'PUT',
    body: bytes,
  });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { id: string; delete_token: string };
  return { ...body, bytes, etag: `"${sha256(bytes)}"` };
}

/** GET /download/:id on `base` from client `address` (X-Forwarded-For), with `headers`. */
async function get(base: string, id: string, address: string, headers: Record<string, string>) {
  const res = await fetch(`${base}/download/${id}`, {
    headers: { 'x-forwarded-for': address, ...headers },
  });
  return {
    status: res.status,
    left: res.headers.get('x-downloads-left'),
    cookies: res.headers.getSetCookie(),
    body: Buffer.from(await res.arrayBuffer()),
  };
}

/** The `name=value` a browser sends back for a Set-Cookie (its attributes checked by the caller). */
const cookieOf = (setCookie: string | undefined) => setCookie?.split(';')[0] ?? '';

/**
 * A TCP proxy to `target` (on loopback, so the gateway sees the same client
 * address): its first connection is closed once `budget` bytes of the answer
 * went through, as a dropped connection would; later connections pass whole.
 */
async function cuttingProxy(target: URL, budget: number) {
  let first = true;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream);
    client.on('close', () => upstream.destroy());
    let left = first ? budget : Infinity;
    first = false;
    upstream.on('data', (chunk: Buffer) => {
      if (chunk.length >= left) {
        client.end(chunk.subarray(0, left));
        upstream.destroy();
        return;
      }
      left -= chunk.length;
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((done) => server.close(() => done()));
    },
  };
}

/**
 * Waits for the address grant of `address` for `id` in Redis: a gateway
 * records it beside the first bytes, not before them, so a client as quick
 * as a test can ask again before it lands.
 */
async function grantRecorded(id: string, address: string): Promise<string> {
  const key = `${cluster.clusterName}:grant:${id}:${address}`;
  return waitFor(`the grant ${key}`, async () => (await redis.exists(key)) === 1 && key, 5000);
}

const info = async (id: string) =>
  (await (await fetch(`${cluster.gatewayUrl}/files/${id}`)).json()) as {
    downloads_used: number;
    downloads_left: number;
  };

describe('a download cut off and resumed', () => {
  it('is finished by the real curl -C - on a file with one download, and counts once', async () => {
    showLogsOnFailure();
    const size = 4 * MiB;
    const file = await upload('max_downloads=1', size);
    // curl's --limit-rate does not hold back a transfer on loopback: the proxy cuts it instead.
    const proxy = await cuttingProxy(new URL(cluster.gatewayUrl), size / 2);
    try {
      const url = `${proxy.url}/download/${file.id}`;
      const out = join(dir, 'cut.jpg');
      const cut = await execFileAsync('curl', ['-sS', '-o', out, url]).catch((err) => err);
      expect(cut.code).toBe(18); // CURLE_PARTIAL_FILE: the connection closed mid-body
      const partial = statSync(out).size;
      expect(partial).toBeGreaterThan(size / 4);
      expect(partial).toBeLessThan(size);

      await grantRecorded(file.id, '127.0.0.1'); // the proxy connects from loopback, as curl would
      await execFileAsync('curl', ['-sS', '-f', '-C', '-', '-o', out, url]);
      expect(sha256(readFileSync(out))).toBe(sha256(file.bytes));

      const fresh = await execFileAsync('curl', [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        url,
      ]);
      expect(fresh.stdout).toBe('410');
    } finally {
      await proxy.close();
    }
    expect(await info(file.id)).toMatchObject({ downloads_used: 1, downloads_left: 0 });
    const samples = await scrape(`${cluster.gatewayUrl}/metrics`);
    expect(metricValue(samples, 'trove_download_resumes_total', { grant: 'address' })).toBe(1);
  });

  it('is resumed by a browser (Range + If-Range and the cookie) from another address without counting', async () => {
    showLogsOnFailure();
    const file = await upload('max_downloads=2');
    const size = file.bytes.length;
    const first = await get(cluster.gatewayUrl, file.id, '198.51.100.1', {});
    expect(first).toMatchObject({ status: 200, left: '1' });
    expect(first.cookies).toHaveLength(1);
    const [setCookie] = first.cookies;
    expect(setCookie).toMatch(/^trove_grant=\d+\.[A-Za-z0-9_-]+; /);
    expect(setCookie!.split('; ').slice(1).sort()).toEqual(
      ['HttpOnly', 'Max-Age=1800', `Path=/download/${file.id}`, 'SameSite=Lax'].sort(),
    );
    const cookie = cookieOf(setCookie);

    // Another address: only the cookie says this client was counted.
    const resumed = await get(cluster.gatewayUrl, file.id, '203.0.113.9', {
      cookie,
      range: 'bytes=1000-',
      'if-range': file.etag,
    });
    expect(resumed).toMatchObject({ status: 206, left: '1' });
    expect(resumed.body.equals(file.bytes.subarray(1000))).toBe(true);
    expect(resumed.cookies).toHaveLength(1); // renewed
    // From the first byte too, when If-Range says it is the same file.
    const again = await get(cluster.gatewayUrl, file.id, '203.0.113.9', {
      cookie,
      range: 'bytes=0-',
      'if-range': file.etag,
    });
    expect(again).toMatchObject({ status: 206, left: '1' });
    expect(await info(file.id)).toMatchObject({ downloads_used: 1, downloads_left: 1 });

    // If-Range names another file: the Range is ignored (RFC 9110), the whole file sent and counted.
    const stale = await get(cluster.gatewayUrl, file.id, '203.0.113.9', {
      cookie,
      range: 'bytes=1000-',
      'if-range': `"${'0'.repeat(64)}"`,
    });
    expect(stale).toMatchObject({ status: 200, left: '0' });
    expect(stale.body.length).toBe(size);
    expect(await info(file.id)).toMatchObject({ downloads_used: 2, downloads_left: 0 });

    // A Range from byte 0 without If-Range is a fresh download: none left.
    const fresh = await get(cluster.gatewayUrl, file.id, '203.0.113.9', {
      cookie,
      range: 'bytes=0-',
    });
    expect(fresh).toMatchObject({ status: 410, left: '0' });
  });

  it('counts once when counted on one gateway and resumed on the other', async () => {
    showLogsOnFailure();
    // By address (curl): no cookie sent back.
    const byAddress = await upload('max_downloads=1');
    expect(await get(cluster.gatewayUrl, byAddress.id, '198.51.100.2', {})).toMatchObject({
      status: 200,
      left: '0',
    });
    await grantRecorded(byAddress.id, '198.51.100.2');
    const resumed = await get(second, byAddress.id, '198.51.100.2', { range: 'bytes=500-' });
    expect(resumed).toMatchObject({ status: 206, left: '0' });
    expect(resumed.body.equals(byAddress.bytes.subarray(500))).toBe(true);
    // Another address without the cookie holds no grant.
    const stranger = await get(second, byAddress.id, '198.51.100.3', { range: 'bytes=500-' });
    expect(stranger.status).toBe(410);

    // By cookie, from another address.
    const byCookie = await upload('max_downloads=1');
    const first = await get(second, byCookie.id, '198.51.100.4', {});
    expect(first.status).toBe(200);
    const cookie = cookieOf(first.cookies[0]);
    const viaCookie = await get(cluster.gatewayUrl, byCookie.id, '198.51.100.5', {
      cookie,
      range: 'bytes=10-',
      'if-range': byCookie.etag,
    });
    expect(viaCookie).toMatchObject({ status: 206, left: '0' });

    for (const id of [byAddress.id, byCookie.id])
      expect(await info(id)).toMatchObject({ downloads_used: 1 });
  });

  it('ends with the file: a grant holder resuming a deleted or expired file gets 410', async () => {
    showLogsOnFailure();
    const deleted = await upload('max_downloads=3');
    const expiring = await upload('max_downloads=3&ttl=2');
    const cookies = new Map<string, string>();
    for (const file of [deleted, expiring]) {
      const first = await get(cluster.gatewayUrl, file.id, '198.51.100.6', {});
      expect(first.status).toBe(200);
      cookies.set(file.id, cookieOf(first.cookies[0]));
      await grantRecorded(file.id, '198.51.100.6');
    }
    const res = await fetch(`${cluster.gatewayUrl}/files/${deleted.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': deleted.delete_token },
    });
    expect(res.status).toBe(204);
    await waitFor('the expiry', async () => {
      const got = await fetch(`${cluster.gatewayUrl}/download/${expiring.id}`, { method: 'HEAD' });
      return got.status === 410;
    });

    for (const [file, code] of [
      [deleted, 'FILE_DELETED'],
      [expiring, 'FILE_EXPIRED'],
    ] as const) {
      // Holding both: the address's grant and the cookie.
      const resumed = await get(cluster.gatewayUrl, file.id, '198.51.100.6', {
        cookie: cookies.get(file.id)!,
        range: 'bytes=100-',
        'if-range': file.etag,
      });
      expect(resumed.status).toBe(410);
      expect(JSON.parse(resumed.body.toString()).error.code).toBe(code);
    }
  });

  it('counts a resume as a fresh download once the grant is gone from Redis and no cookie comes', async () => {
    showLogsOnFailure();
    const file = await upload('max_downloads=1');
    expect((await get(cluster.gatewayUrl, file.id, '198.51.100.7', {})).status).toBe(200);
    await redis.del(await grantRecorded(file.id, '198.51.100.7'));
    expect(await redis.keys(`${cluster.clusterName}:grant:${file.id}:*`)).toEqual([]);

    const resumed = await get(cluster.gatewayUrl, file.id, '198.51.100.7', { range: 'bytes=100-' });
    expect(resumed).toMatchObject({ status: 410, left: '0' });
    expect(await info(file.id)).toMatchObject({ downloads_used: 1 });
  });
});

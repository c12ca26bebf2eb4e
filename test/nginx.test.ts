/**
 * The repo's nginx.conf, rendered for two test gateways and run by a real
 * nginx: exact download limits through the balancer, no failed GET when a
 * gateway is killed, streamed 200 MB uploads, and share links built from the
 * X-Forwarded-* headers nginx sets. Skipped only where no nginx is installed;
 * .ci/run installs it and sets TROVE_TEST_REQUIRE, so there a missing nginx fails.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { findNginx, startNginx, type RunningNginx } from '../scripts/nginx-lb.js';
import {
  fixture,
  freePort,
  hashBody,
  jpegStream,
  memoryOf,
  sha256,
  startCluster,
  type Cluster,
} from './harness.js';
import { skipWithout } from './required-tools.js';

const binary = findNginx();
// Skipped, saying why, where nginx is missing; a failure instead under TROVE_TEST_REQUIRE (CI).
const noNginx = skipWithout(
  'nginx',
  binary,
  'apt-get install -y nginx-light, or set NGINX to its path',
);

const hostPort = (url: string) => new URL(url).host;

describe.skipIf(noNginx)('nginx in front of two gateways', () => {
  let cluster: Cluster;
  let nginx: RunningNginx;

  beforeAll(async () => {
    cluster = await startCluster({ env: { TRUST_PROXY: 'true' } });
    const second = await cluster.startGateway('gateway2');
    nginx = await startNginx(binary!, `${cluster.dir}/nginx`, {
      listen: `127.0.0.1:${await freePort()}`,
      gateways: [hostPort(cluster.gatewayUrl), hostPort(second)],
    });
  });
  afterAll(async () => {
    await nginx?.stop();
    await cluster?.stop();
  });

  function showLogsOnFailure() {
    onTestFailed(() => console.log(cluster.logTail()));
  }

  let seq = 0;
  async function upload(query: string): Promise<{ id: string; sha256: string }> {
    const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`nginx-${seq++}-${Date.now()}`)]);
    const res = await fetch(`${nginx.url}/upload/p.jpg?${query}`, { method: 'PUT', body: data });
    expect(res.status).toBe(201);
    return { id: ((await res.json()) as { id: string }).id, sha256: sha256(data) };
  }

  it('answers /health itself', async () => {
    const res = await fetch(`${nginx.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('keeps /metrics off the balancer: Prometheus scrapes each gateway directly', async () => {
    const res = await fetch(`${nginx.url}/metrics`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    expect((await fetch(`${cluster.gatewayUrl}/metrics`)).status).toBe(200);
  });

  it('serves exactly max_downloads of 200 concurrent GETs', async () => {
    showLogsOnFailure();
    const file = await upload('max_downloads=5');
    const results = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const res = await fetch(`${nginx.url}/download/${file.id}`);
        return { status: res.status, data: Buffer.from(await res.arrayBuffer()) };
      }),
    );
    const served = results.filter((r) => r.status === 200);
    expect(served).toHaveLength(5);
    expect(results.filter((r) => r.status === 410)).toHaveLength(195);
    for (const r of served) expect(sha256(r.data)).toBe(file.sha256);
  });

  it('builds share links from the Host the client used, through X-Forwarded-*', async () => {
    showLogsOnFailure();
    const res = await request(`${nginx.url}/upload/p.jpg`, {
      method: 'PUT',
      body: fixture('photo.jpg'),
      // nginx replaces a client's own X-Forwarded-Host with the Host it received.
      headers: { host: 'photos.example:8443', 'x-forwarded-host': 'evil.example' },
    });
    expect(res.statusCode).toBe(201);
    const body = (await res.body.json()) as { id: string; url: string };
    expect(body.url).toBe(`http://photos.example:8443/download/${body.id}`);
  });

  it('streams a 200 MB upload through nginx with flat gateway memory, and back', async () => {
    showLogsOnFailure();
    const size = 200 * 1024 * 1024;
    const payload = jpegStream(size);
    const pids = [cluster.gateway!, cluster.proc('gateway2')!].map((p) => p.proc.pid!);
    const before = pids.map((pid) => memoryOf(pid).rss);
    const peak = [...before];
    const sample = () =>
      pids.forEach((pid, i) => (peak[i] = Math.max(peak[i]!, memoryOf(pid).rss)));
    const sampler = setInterval(sample, 50);
    try {
      const up = await request(`${nginx.url}/upload/big.jpg?max_downloads=0`, {
        method: 'PUT',
        body: payload.stream,
        headers: { 'content-length': String(size) },
      });
      const body = (await up.body.json()) as { id: string; size: number; sha256: string };
      expect(up.statusCode).toBe(201);
      expect(body).toMatchObject({ size, sha256: payload.digest() });

      const res = await request(`${nginx.url}/download/${body.id}`);
      expect(res.statusCode).toBe(200);
      expect(await hashBody(res.body)).toEqual({ sha256: payload.digest(), size });
    } finally {
      clearInterval(sampler);
    }
    // As test/storage-path.test.ts: holding the file would grow a gateway by >= 200 MB.
    const growth = Math.max(...peak.map((p, i) => p - before[i]!));
    expect(growth).toBeLessThan(size / 2);
  });

  // Last: it leaves one gateway dead.
  it('fails no GET while a gateway is killed with SIGKILL under load', async () => {
    showLogsOnFailure();
    const files = await Promise.all(Array.from({ length: 8 }, () => upload('max_downloads=0')));
    const failures: string[] = [];
    let done = 0;
    let stop = false;
    const client = async (i: number) => {
      for (let n = 0; !stop; n++) {
        const file = files[(i + n) % files.length]!;
        try {
          const res = await request(`${nginx.url}/download/${file.id}`);
          const got = await hashBody(res.body);
          if (res.statusCode !== 200 || got.sha256 !== file.sha256)
            failures.push(`${res.statusCode} ${got.size} bytes`);
        } catch (err) {
          failures.push((err as Error).message);
        }
        done++;
      }
    };
    const clients = Array.from({ length: 16 }, (_, i) => client(i));
    await new Promise((r) => setTimeout(r, 1000));
    const beforeKill = done;
    await cluster.kill('gateway2', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await Promise.all(clients);
    expect(failures).toEqual([]);
    expect(beforeKill).toBeGreaterThan(50);
    expect(done - beforeKill).toBeGreaterThan(50); // traffic went on, through gateway 1
  });
});

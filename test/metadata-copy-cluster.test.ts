/**
 * Moving a running cluster's metadata from SQLite to PostgreSQL, as
 * docs/deployment.md tells an operator to: files uploaded and downloaded
 * through a gateway on SQLite, the gateway stopped, `metadata:copy` run, a
 * gateway started with DATABASE_URL. Every file still downloads, its
 * remaining downloads and expiry are what they were, and the limit holds.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ROOT, fixture, sha256, startCluster, type Cluster } from './harness.js';
import { createDatabase, type TestDatabase } from './postgres.js';

const run = promisify(execFile);

let cluster: Cluster;
let target: TestDatabase;
beforeAll(async () => {
  cluster = await startCluster();
  target = await createDatabase('copy_cluster');
});
afterAll(async () => {
  await cluster?.stop();
  await target?.drop();
});

interface FileView {
  status: string;
  downloads_used: number;
  downloads_left: number | null;
  expires_at: string;
}

async function view(base: string, id: string): Promise<FileView> {
  const res = await fetch(`${base}/files/${id}`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as FileView;
  return {
    status: body.status,
    downloads_used: body.downloads_used,
    downloads_left: body.downloads_left,
    expires_at: body.expires_at,
  };
}

async function download(base: string, id: string) {
  const res = await fetch(`${base}/download/${id}`);
  return {
    status: res.status,
    left: res.headers.get('x-downloads-left'),
    sha256: sha256(Buffer.from(await res.arrayBuffer())),
  };
}

describe('moving the metadata from SQLite to PostgreSQL', () => {
  it('keeps every file, its downloads left and its expiry, and enforces the limit', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const files: { id: string; sha256: string }[] = [];
    for (let i = 0; i < 3; i++) {
      const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`copy-${i}-${Date.now()}`)]);
      const res = await fetch(`${cluster.gatewayUrl}/upload/p${i}.jpg?max_downloads=3&ttl=3600`, {
        method: 'PUT',
        body: data,
      });
      expect(res.status).toBe(201);
      files.push({ id: ((await res.json()) as { id: string }).id, sha256: sha256(data) });
    }
    const [once, ...untouched] = files as [(typeof files)[0], ...typeof files];
    expect(await download(cluster.gatewayUrl, once.id)).toMatchObject({
      status: 200,
      left: '2',
      sha256: once.sha256,
    });
    const before = new Map<string, FileView>();
    for (const f of files) before.set(f.id, await view(cluster.gatewayUrl, f.id));
    expect(before.get(once.id)).toMatchObject({ downloads_used: 1, downloads_left: 2 });

    // Stopped the hard way: the WAL may still hold the last commits, and the copy must see them.
    await cluster.kill('gateway');
    const { stdout } = await run(
      process.execPath,
      [join(ROOT, 'dist/scripts/metadata-copy.js'), '--from', cluster.dbPath, '--to', target.url],
      { cwd: cluster.dir },
    );
    expect(stdout).toMatch(/^ {2}files +3 rows/m);
    expect(stdout).toMatch(/^copied and checked in/m);

    const gateway = await cluster.startGateway('gateway2', { DATABASE_URL: target.url });
    for (const f of files) expect(await view(gateway, f.id)).toEqual(before.get(f.id));

    // The file downloaded once has two downloads left, then is refused.
    expect(await download(gateway, once.id)).toMatchObject({ status: 200, left: '1' });
    expect(await download(gateway, once.id)).toMatchObject({
      status: 200,
      left: '0',
      sha256: once.sha256,
    });
    expect((await download(gateway, once.id)).status).toBe(410);
    expect(await view(gateway, once.id)).toMatchObject({
      status: 'exhausted',
      downloads_used: 3,
      downloads_left: 0,
    });
    // The others have all three.
    for (const f of untouched) {
      for (const left of ['2', '1', '0']) {
        expect(await download(gateway, f.id)).toMatchObject({
          status: 200,
          left,
          sha256: f.sha256,
        });
      }
      expect((await download(gateway, f.id)).status).toBe(410);
    }
  });
});

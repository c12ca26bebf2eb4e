/**
 * Node failures against a real cluster: `kill -9` one storage node and every
 * file still downloads and uploads still succeed with two replicas; with two
 * down, uploads are refused with 503 and nothing is committed.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  filesUnder,
  fixture,
  queryDb,
  requestLine,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

interface Uploaded {
  id: string;
  sha256: string;
  replicas: { node: string; state: string }[];
}

async function upload(
  data: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${cluster.gatewayUrl}/upload/f.jpg?max_downloads=0`, {
    method: 'PUT',
    body: data,
    headers,
  });
  return { status: res.status, body: await res.json() };
}

async function downloadSha(id: string): Promise<string> {
  const res = await fetch(`${cluster.gatewayUrl}/download/${id}`);
  expect(res.status, `download ${id}`).toBe(200);
  return sha256(Buffer.from(await res.arrayBuffer()));
}

const committedCount = () =>
  queryDb<{ n: number }>(cluster, `SELECT count(*) AS n FROM files WHERE state = 'committed'`)[0]!
    .n;

async function clusterView(): Promise<any> {
  return (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json();
}

/** Distinct images: the fixture with a different trailing comment each time. */
function image(i: number): Buffer {
  return Buffer.concat([fixture('photo.jpg'), Buffer.from(`trailer-${i}-${Date.now()}`)]);
}

describe('failover', () => {
  const files: Uploaded[] = [];

  it('serves every file and takes uploads right after kill -9 of a node', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    for (let i = 0; i < 12; i++) {
      const up = await upload(image(i));
      expect(up.status).toBe(201);
      files.push(up.body);
    }
    await cluster.kill('node1', 'SIGKILL');

    // No pause: the gateway has not probed yet, so requests meet the dead node first-hand.
    const during = await Promise.all([...Array(6)].map((_, i) => upload(image(100 + i))));
    for (const up of during) {
      expect(up.status).toBe(201);
      const ok = up.body.replicas.filter((r: any) => r.state === 'ok').map((r: any) => r.node);
      expect(ok).toHaveLength(2);
      expect(ok).not.toContain('node1');
      expect(up.body.replicas).toContainEqual({ node: 'node1', state: 'missing' });
      files.push(up.body);
    }
    for (const f of files) expect(await downloadSha(f.id)).toBe(f.sha256);

    const view = await waitFor('node1 offline', async () => {
      const v = await clusterView();
      return v.nodes.find((n: any) => n.id === 'node1').status === 'offline' && v;
    });
    expect(view.under_replicated).toBe(during.length);
    expect((await fetch(`${cluster.gatewayUrl}/ready`)).status).toBe(200);
  });

  it('refuses uploads with 503 and commits nothing when two nodes are down', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    await cluster.kill('node2', 'SIGKILL');
    const before = committedCount();
    const requestIds = [0, 1, 2].map((i) => `two-down-${i}-${Date.now()}`);
    for (const [i, requestId] of requestIds.entries()) {
      const up = await upload(image(200 + i), { 'x-request-id': requestId });
      expect(up.status).toBe(503);
      expect(['NOT_ENOUGH_NODES', 'WRITE_QUORUM_FAILED']).toContain(up.body.error.code);
    }
    // The gateway is done with each (it logs a request's line once its response
    // has ended): none can still be committing, nor be half-way in `pending`.
    for (const requestId of requestIds)
      await waitFor(`the gateway done with ${requestId}`, async () =>
        requestLine(cluster, 'gateway', requestId),
      );
    expect(committedCount()).toBe(before);
    expect(
      queryDb<{ n: number }>(cluster, `SELECT count(*) AS n FROM files WHERE state = 'pending'`),
    ).toEqual([{ n: 0 }]);
    const node3 = cluster.nodes[2]!;
    const blobs = await filesUnder(join(node3.dataDir, 'blobs'));
    expect(blobs.length).toBe(files.length);
    expect(await filesUnder(join(node3.dataDir, 'tmp'))).toEqual([]);
    expect((await fetch(`${cluster.gatewayUrl}/ready`)).status).toBe(503);

    // Reads still work from the last node standing.
    for (const f of files) expect(await downloadSha(f.id)).toBe(f.sha256);
  });

  it('sees restarted nodes come back online', async () => {
    await cluster.startNode('node1');
    await cluster.startNode('node2');
    await waitFor('all nodes online', async () => {
      const v = await clusterView();
      return v.nodes.every((n: any) => n.status === 'online');
    });
    const up = await upload(image(300));
    expect(up.status).toBe(201);
    expect(up.body.replicas.every((r: any) => r.state === 'ok')).toBe(true);
  });
});

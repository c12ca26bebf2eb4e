/**
 * /health, /ready and /api/cluster, on the gateway app in this process
 * (test/in-process-gateway.ts): what they report of the nodes as the
 * registry sees them, and of the files in the store.
 */
import { describe, expect, it } from 'vitest';
import { PHOTO, expectError, gatewaysPerTest } from '../../test/in-process-gateway.js';

const gateway = gatewaysPerTest();

describe('GET /health and /ready', () => {
  it('/health answers 200 whatever the nodes', async () => {
    const gw = await gateway();
    for (const n of gw.config.nodes) gw.registry.status.set(n.id, 'offline');
    const res = await gw.request('/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('/ready answers 200 with WRITE_QUORUM nodes online, 503 with fewer', async () => {
    const gw = await gateway();
    const ready = await gw.request('/ready');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      ready: true,
      metadata: true,
      redis: true,
      queue: true,
      nodes_online: 3,
      write_quorum: 2,
    });
    gw.registry.status.set('node1', 'offline').set('node2', 'suspect');
    const short = await gw.request('/ready');
    expect(short.status).toBe(503);
    expect(await short.json()).toMatchObject({ ready: false, nodes_online: 1 });
  });

  it('/ready does not need the job queue', async () => {
    const gw = await gateway();
    gw.jobs.connected = false;
    const res = await gw.request('/ready');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ready: true, queue: false });
  });
});

describe('GET /api/cluster', () => {
  it('reports every node, the live files and those short of a copy', async () => {
    const gw = await gateway();
    await gw.upload(PHOTO);
    gw.replicator.failing.add('node2');
    await gw.upload(PHOTO);
    gw.registry.status.set('node3', 'offline');
    const res = await gw.request('/api/cluster');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { nodes: { id: string; status: string }[] };
    expect(body).toMatchObject({
      objects: 2,
      under_replicated: 1,
      replication_factor: 3,
      write_quorum: 2,
      repairs: { queued: 0, done: 0, bytes: 0 },
    });
    expect(body.nodes.map((n) => [n.id, n.status])).toEqual([
      ['node1', 'online'],
      ['node2', 'online'],
      ['node3', 'offline'],
    ]);
  });
});

describe('an unknown route', () => {
  it('answers 404 NOT_FOUND in the JSON of every error', async () => {
    const gw = await gateway();
    await expectError(await gw.request('/nowhere'), 404, 'NOT_FOUND');
    await expectError(await gw.request('/download', { method: 'DELETE' }), 404, 'NOT_FOUND');
  });
});

/**
 * One upload followed across processes by its request id: the gateway
 * echoes X-Request-Id, the storage nodes log the chained write under it,
 * and the worker logs the image job the upload queued under it too, as well
 * as a deletion job that went through the delay ladder. Ids that are missing
 * or unacceptable are replaced by a generated one.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { fixture, startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  // No expiry sweep: the deletion below must be done by the job its request queued, not the sweep.
  cluster = await startCluster({ worker: true, env: { SWEEP_SCHEDULE: '0 0 0 1 1 *' } });
});
afterAll(async () => {
  await cluster?.stop();
});
const showLogs = () => onTestFailed(() => console.log(cluster.logTail(60)));

type Line = Record<string, unknown>;

/** The JSON lines of one process's log file that carry `requestId`. */
function linesWith(processName: string, requestId: string): Line[] {
  return readFileSync(cluster.proc(processName)!.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => l.request_id === requestId);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('request ids across processes', () => {
  it('follows one upload from the gateway through every node of the chain to the worker', async () => {
    showLogs();
    const requestId = `upload-${randomBytes(6).toString('hex')}`;
    const res = await fetch(`${cluster.gatewayUrl}/upload/photo.jpg?max_downloads=0`, {
      method: 'PUT',
      body: fixture('photo.jpg'),
      headers: { 'X-Request-Id': requestId },
    });
    expect(res.status, await res.clone().text()).toBe(201);
    expect(res.headers.get('x-request-id')).toBe(requestId);
    const { id } = (await res.json()) as { id: string };

    await waitFor(
      `${id} processed`,
      async () => {
        const file = (await (await fetch(`${cluster.gatewayUrl}/files/${id}`)).json()) as {
          processing: { state: string };
        };
        if (file.processing.state === 'failed') throw new Error('image processing failed');
        return file.processing.state === 'done';
      },
      30_000,
    );

    // The gateway: one line for the upload request, with its route and outcome.
    const gateway = await waitFor('the gateway request line', async () =>
      linesWith('gateway', requestId).find((l) => l.msg === 'request'),
    );
    expect(gateway).toMatchObject({
      service: 'gateway',
      method: 'PUT',
      route: '/upload/:filename',
      status: 201,
    });
    expect(gateway.bytes_in).toBe(fixture('photo.jpg').length);

    // Every node wrote the original under the upload's id: the head from the gateway,
    // the others from the hop before them (the gateway only talks to the head).
    for (const node of cluster.nodes) {
      const write = await waitFor(`${node.id} logs the write`, async () =>
        linesWith(node.id, requestId).find(
          (l) => l.msg === 'request' && l.method === 'PUT' && l.path === `/blobs/${id}`,
        ),
      );
      expect(write).toMatchObject({ service: node.id, status: 201 });
    }

    // The worker ran the image job the upload queued under the same id.
    const worker = linesWith('worker', requestId);
    expect(worker.find((l) => l.msg === 'processing image')).toMatchObject({ id });
  });

  it('keeps the id of a deletion through the delay ladder, to the blob deletes on the nodes', async () => {
    showLogs();
    const upload = await fetch(`${cluster.gatewayUrl}/upload/doomed.jpg`, {
      method: 'PUT',
      body: fixture('photo.jpg'),
    });
    expect(upload.status).toBe(201);
    const { id, delete_token } = (await upload.json()) as { id: string; delete_token: string };

    // The job waits out DELETE_GRACE_SECONDS in the delay ladder, then removes the blobs.
    const requestId = `delete-${randomBytes(6).toString('hex')}`;
    const res = await fetch(`${cluster.gatewayUrl}/files/${id}`, {
      method: 'DELETE',
      headers: { 'X-Delete-Token': delete_token, 'X-Request-Id': requestId },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('x-request-id')).toBe(requestId);

    const done = await waitFor('the blobs deleted', async () =>
      linesWith('worker', requestId).find((l) => l.msg === 'file blobs deleted'),
    );
    expect(done).toMatchObject({ id });
    for (const node of cluster.nodes) {
      const del = await waitFor(`${node.id} logs the delete`, async () =>
        linesWith(node.id, requestId).find(
          (l) => l.msg === 'request' && l.method === 'DELETE' && l.path === `/blobs/${id}`,
        ),
      );
      expect(del).toMatchObject({ status: 204 });
    }
  });

  it('gives a request without an id a new one, and replaces an unacceptable one', async () => {
    showLogs();
    const plain = await fetch(`${cluster.gatewayUrl}/api/config`);
    expect(plain.status).toBe(200);
    const generated = plain.headers.get('x-request-id');
    expect(generated).toMatch(UUID);

    for (const bad of ['x'.repeat(129), 'has spaces in it', 'quote"and;semicolon']) {
      const res = await fetch(`${cluster.gatewayUrl}/api/config`, {
        headers: { 'X-Request-Id': bad },
      });
      const given = res.headers.get('x-request-id');
      expect(given).toMatch(UUID);
      expect(given).not.toBe(generated);
      const line = await waitFor(`the gateway line of ${given}`, async () =>
        linesWith('gateway', given!).find((l) => l.msg === 'request'),
      );
      expect(line).toMatchObject({ path: '/api/config', status: 200 });
      expect(readFileSync(cluster.gateway!.logFile, 'utf8')).not.toContain(bad);
    }
  });
});

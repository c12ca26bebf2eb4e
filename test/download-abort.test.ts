/**
 * What a download that the client abandons costs (docs/api.md, "What counts
 * as a download"): one aborted before its first byte is given back; one
 * aborted once bytes flowed counts. Real nodes are stopped with SIGSTOP, so
 * the gateway has taken a download and waits for a first byte that cannot
 * come while the client leaves.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  fixture,
  hashBody,
  jpegStream,
  requestLine,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  // The gateway gives a silent node a minute before trying the next one, so
  // the only thing that can end a download stuck before its first byte here
  // is the client leaving.
  cluster = await startCluster({ env: { NODE_TIMEOUT_MS: '60000' } });
});
afterAll(async () => {
  await cluster?.stop();
});
const showLogs = () => onTestFailed(() => console.log(cluster.logTail()));

interface FileJson {
  id: string;
  sha256: string;
  downloads_left: number;
}

const meta = async (id: string) =>
  (await (await fetch(`${cluster.gatewayUrl}/files/${id}`)).json()) as FileJson;

async function expectServedThenRefused(file: { id: string; sha256: string }, served: number) {
  for (let i = served - 1; i >= 0; i--) {
    const res = await request(`${cluster.gatewayUrl}/download/${file.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-downloads-left']).toBe(String(i));
    expect((await hashBody(res.body)).sha256).toBe(file.sha256);
  }
  const over = await fetch(`${cluster.gatewayUrl}/download/${file.id}`);
  expect(over.status).toBe(410);
  expect(((await over.json()) as any).error.code).toBe('DOWNLOAD_LIMIT_REACHED');
}

async function allOnline(): Promise<void> {
  await waitFor('every node online again', async () => {
    const view = (await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as any;
    return view.nodes.every((n: { status: string }) => n.status === 'online');
  });
}

describe('a download the client abandons', () => {
  it('is given back when the client leaves before the first byte', async () => {
    showLogs();
    const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`abort-before-${Date.now()}`)]);
    const up = await fetch(`${cluster.gatewayUrl}/upload/a.jpg?max_downloads=2`, {
      method: 'PUT',
      body: data,
    });
    expect(up.status).toBe(201);
    const file = { ...((await up.json()) as FileJson), sha256: sha256(data) };

    const nodes = cluster.nodes.map((n) => n.proc!.proc);
    for (const p of nodes) p.kill('SIGSTOP'); // they accept connections and never answer
    const requestId = `abort-before-${file.id}`;
    try {
      const client = new AbortController();
      const pending = fetch(`${cluster.gatewayUrl}/download/${file.id}`, {
        signal: client.signal,
        headers: { 'x-request-id': requestId },
      }).catch((err: Error) => err);
      // The gateway has taken a download and is waiting for a node's first byte.
      await waitFor('the download taken', async () => (await meta(file.id)).downloads_left === 1);
      client.abort();
      expect(await pending).toMatchObject({ name: 'AbortError' }); // no status line ever came
      // The gateway is done with the request (it logs its line when the handler
      // returns): it stopped waiting for the nodes when its client left.
      await waitFor('the gateway to give up the read its client left', async () =>
        requestLine(cluster, 'gateway', requestId),
      );
      expect(requestLine(cluster, 'gateway', requestId)).toMatchObject({ aborted: true });
    } finally {
      // From here a gateway still waiting would get its first byte, and the download would count.
      for (const p of nodes) p.kill('SIGCONT');
    }
    await waitFor(
      'the download given back',
      async () => (await meta(file.id)).downloads_left === 2,
    );
    await allOnline();
    await expectServedThenRefused(file, 2);
  });

  it('counts when the client leaves after bytes flowed', async () => {
    showLogs();
    await allOnline();
    // Large enough that the gateway is still sending when the client leaves.
    const size = 16 * 1024 * 1024;
    const payload = jpegStream(size);
    const up = await request(`${cluster.gatewayUrl}/upload/big.jpg?max_downloads=2`, {
      method: 'PUT',
      body: payload.stream,
      headers: { 'content-length': String(size) },
    });
    expect(up.statusCode).toBe(201);
    const file = { ...((await up.body.json()) as FileJson), sha256: payload.digest() };

    const requestId = `abort-after-${file.id}`;
    const res = await request(`${cluster.gatewayUrl}/download/${file.id}`, {
      headers: { 'x-request-id': requestId },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-downloads-left']).toBe('1');
    const first = await res.body[Symbol.asyncIterator]().next();
    expect((first.value as Buffer).length).toBeGreaterThan(0);
    res.body.destroy();
    // The gateway saw the client leave with the body unfinished.
    await waitFor('the gateway seeing the client leave', async () =>
      requestLine(cluster, 'gateway', requestId),
    );
    expect(requestLine(cluster, 'gateway', requestId)).toMatchObject({
      status: 200,
      aborted: true,
    });
    expect((await meta(file.id)).downloads_left).toBe(1);
    await expectServedThenRefused(file, 1);
  });
});

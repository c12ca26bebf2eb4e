/**
 * Reads spread over the replicas and never queue without limit, against real
 * processes. The gateway runs with NODE_READ_CONNECTIONS=2; clients that read
 * the first bytes of a large download and then stall hold a node connection
 * each for as long as they like. The reads must go to the least busy
 * replica (one per node before a second anywhere), a download that finds
 * every replica's read connections busy must get 503 NODES_BUSY at once
 * without spending a download, and uploads must still get through.
 */
import { get, type ClientRequest, type IncomingMessage } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  hashBody,
  jpegStream,
  startCluster,
  waitFor,
  type Cluster,
  type TestNode,
} from './harness.js';
import { metricValue, scrape } from './metrics-text.js';

/** Read connections per node in the gateway: three nodes take six reads in all. */
const READS_PER_NODE = 2;
/** Far more than every socket buffer between node, gateway and client: a stalled client keeps its node connection busy. */
const SIZE = 64 * 1024 * 1024;
const MAX_DOWNLOADS = 20;
/** Generous for a loaded machine; a request that waits in a queue waits longer. */
const ANSWER_MS = 20_000;

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ env: { NODE_READ_CONNECTIONS: String(READS_PER_NODE) } });
});
afterAll(async () => {
  for (const dl of stalled.splice(0)) dl.close();
  await cluster?.stop();
});

function showLogsOnFailure() {
  onTestFailed(() => console.log(cluster.logTail()));
}

/** A download whose client read its first bytes and stopped reading. */
interface StalledDownload {
  res: IncomingMessage;
  close(): void;
}

const stalled: StalledDownload[] = [];

/**
 * GETs /download/:id on a connection of its own, reads the first chunk and
 * stops reading. Undefined if no first byte came within ANSWER_MS (the
 * request is then abandoned).
 */
function stallDownload(id: string): Promise<StalledDownload | undefined> {
  return new Promise((resolve) => {
    let req: ClientRequest | undefined = undefined;
    const timer = setTimeout(() => {
      req?.destroy();
      resolve(undefined);
    }, ANSWER_MS);
    req = get(`${cluster.gatewayUrl}/download/${id}`, { agent: false }, (res) => {
      res.once('data', () => {
        res.pause();
        clearTimeout(timer);
        const dl = { res, close: () => req!.destroy() };
        stalled.push(dl);
        resolve(dl);
      });
    });
    req.on('error', () => undefined);
  });
}

/** Starts `count` stalled downloads of `id` one after the other; undefined for each that got no answer. */
async function stallDownloads(id: string, count: number): Promise<(StalledDownload | undefined)[]> {
  const started: (StalledDownload | undefined)[] = [];
  for (let i = 0; i < count; i++) started.push(await stallDownload(id));
  return started;
}

async function nodeSamples(node: TestNode) {
  return scrape(`${node.url}/metrics`);
}

/** Bytes each node has sent of blob reads so far, by node id. */
async function bytesRead(): Promise<Record<string, number>> {
  const entries = await Promise.all(
    cluster.nodes.map(async (n) => [
      n.id,
      metricValue(await nodeSamples(n), 'trove_node_blob_bytes_read_total'),
    ]),
  );
  return Object.fromEntries(entries) as Record<string, number>;
}

/** Blob reads each node has finished answering (counted when their response closes), by node id. */
async function readsAnswered(): Promise<Record<string, number>> {
  const entries = await Promise.all(
    cluster.nodes.map(async (n) => [
      n.id,
      metricValue(await nodeSamples(n), 'trove_http_requests_total', {
        method: 'GET',
        route: '/blobs/:key',
      }),
    ]),
  );
  return Object.fromEntries(entries) as Record<string, number>;
}

async function upload(size: number, maxDownloads: number) {
  const payload = jpegStream(size);
  const res = await request(
    `${cluster.gatewayUrl}/upload/photo.jpg?max_downloads=${maxDownloads}`,
    {
      method: 'PUT',
      body: payload.stream,
      headers: { 'content-length': String(size) },
      signal: AbortSignal.timeout(120_000),
    },
  );
  const body = (await res.body.json()) as any;
  return { status: res.statusCode, body, sha256: payload.digest() };
}

describe('reads under load', () => {
  let file: { id: string; sha256: string };

  it('spreads reads over every replica, the least busy first', async () => {
    showLogsOnFailure();
    const up = await upload(SIZE, MAX_DOWNLOADS);
    expect(up.status).toBe(201);
    expect(up.body.replicas.every((r: any) => r.state === 'ok')).toBe(true);
    file = { id: up.body.id, sha256: up.sha256 };
    expect(await bytesRead()).toEqual({ node1: 0, node2: 0, node3: 0 });

    // One read per node's worth: placement order alone would put them all on one node.
    const started = await stallDownloads(file.id, cluster.nodes.length);
    const serving = Object.entries(await bytesRead())
      .filter(([, bytes]) => bytes > 0)
      .map(([node]) => node);
    expect(serving).toEqual(['node1', 'node2', 'node3']);
    expect(started.map((dl) => dl?.res.statusCode)).toEqual([200, 200, 200]);
  });

  it('answers 503 NODES_BUSY at once when every replica is busy, spending no download', async () => {
    showLogsOnFailure();
    const more = await stallDownloads(file.id, cluster.nodes.length * READS_PER_NODE - 3);
    expect(more.map((dl) => dl?.res.statusCode)).toEqual([200, 200, 200]);

    // Every read connection to every replica is held now: the next download must not wait.
    const res = await request(`${cluster.gatewayUrl}/download/${file.id}`, {
      signal: AbortSignal.timeout(ANSWER_MS),
    });
    if (res.statusCode !== 503) res.body.destroy(); // a download under way: not read here
    expect(res.statusCode).toBe(503);
    const body = (await res.body.json()) as any;
    expect(body.error.code).toBe('NODES_BUSY');
    expect(res.headers['retry-after']).toBeDefined();
    const held = cluster.nodes.length * READS_PER_NODE;
    expect(res.headers['x-downloads-left']).toBe(String(MAX_DOWNLOADS - held));
    const meta = (await (await fetch(`${cluster.gatewayUrl}/files/${file.id}`)).json()) as any;
    expect(meta.downloads_left).toBe(MAX_DOWNLOADS - held);
  });

  it('takes uploads while downloads hold every read connection', async () => {
    showLogsOnFailure();
    expect(stalled).toHaveLength(cluster.nodes.length * READS_PER_NODE);
    const up = await upload(256 * 1024, 1);
    expect(up.status).toBe(201);
    expect(up.body.replicas.map((r: any) => r.state)).toEqual(['ok', 'ok', 'ok']);
  });

  it('served two reads per node, and the refused download was not counted', async () => {
    showLogsOnFailure();
    const held = stalled.length;
    for (const dl of stalled.splice(0)) dl.close();
    const answered = await waitFor('the nodes to close every stalled read', async () => {
      const counts = await readsAnswered();
      return Object.values(counts).reduce((a, b) => a + b, 0) >= held && counts;
    });
    expect(answered).toEqual({ node1: 2, node2: 2, node3: 2 });

    const res = await request(`${cluster.gatewayUrl}/download/${file.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-downloads-left']).toBe(String(MAX_DOWNLOADS - held - 1));
    expect(await hashBody(res.body)).toEqual({ sha256: file.sha256, size: SIZE });
  });
});

/**
 * Ranged reads of a large file are verified block by block (storage-node/
 * block-range.ts): a few bytes deep inside a 256 MiB file cost the node the
 * one or two 1 MiB blocks they touch, not a read of the whole blob, so the
 * first byte comes well within NODE_TIMEOUT_MS. Before block sums a node
 * hashed the whole blob before sending the first byte of any range: with a
 * short node timeout, every replica timed out and the gateway answered 503.
 */
import { readFileSync } from 'node:fs';
import { flipByte } from './disk-faults.js';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { rankNodes } from '../shared/placement.js';
import { filesUnder, jpegStream, startCluster, type Cluster } from './harness.js';
import { metricValue, parseMetrics } from './metrics-text.js';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
/**
 * Short enough that reading and hashing 256 MiB cannot fit in it (about 0.3 s
 * on an idle machine at best, 2 s under load), long enough for one 1 MiB block
 * on a loaded machine.
 */
const NODE_TIMEOUT_MS = 300;
/** Bytes that straddle the block boundary at 200 MiB: blocks 199 and 200. */
const DEEP = { start: 200 * MiB - 50, end: 200 * MiB + 49 };

let cluster: Cluster;
/** The 256 MiB file, and its bytes in DEEP. */
let big: { id: string; bytes: Buffer };
beforeAll(async () => {
  cluster = await startCluster({
    env: { NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS), SCRUB_INTERVAL_SECONDS: '0' },
  });
  big = await uploadBig(DEEP);
});
afterAll(async () => {
  await cluster?.stop();
});

/** Uploads SIZE bytes, streamed, keeping only the bytes of `range`. */
async function uploadBig(range: { start: number; end: number }) {
  const payload = jpegStream(SIZE);
  const kept: Buffer[] = [];
  let offset = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      const from = Math.max(range.start, offset);
      const to = Math.min(range.end + 1, offset + chunk.length);
      if (from < to) kept.push(Buffer.from(chunk.subarray(from - offset, to - offset)));
      offset += chunk.length;
      done(null, chunk);
    },
  });
  const res = await request(`${cluster.gatewayUrl}/upload/big.jpg?max_downloads=0`, {
    method: 'PUT',
    body: payload.stream.pipe(tap),
    headers: { 'content-length': String(SIZE) },
  });
  const body = (await res.body.json()) as { id: string; sha256: string; replicas: any[] };
  expect(res.statusCode).toBe(201);
  expect(body.sha256).toBe(payload.digest());
  expect(body.replicas.every((r) => r.state === 'ok')).toBe(true);
  return { id: body.id, bytes: Buffer.concat(kept) };
}

/** A metric summed over every storage node. */
async function nodesTotal(name: string): Promise<number> {
  let total = 0;
  for (const node of cluster.nodes) {
    const text = await (await fetch(`${node.url}/metrics`)).text();
    total += metricValue(parseMetrics(text), name);
  }
  return total;
}

async function getRange(id: string, range: string) {
  const res = await request(`${cluster.gatewayUrl}/download/${id}`, { headers: { range } });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

/** Bytes a node reads for a range: the blocks it touches, the sidecar's header and one batch of digests. */
function diskBytesFor(range: { start: number; end: number }): number {
  const blocks = SIZE / MiB;
  const first = Math.floor(range.start / MiB);
  const touched = Math.floor(range.end / MiB) - first + 1;
  return touched * MiB + 52 + Math.min(1024, blocks - first) * 32;
}

describe('ranged reads of a large file', () => {
  it('answer 206 with the right bytes from one replica, reading only the blocks they touch', async () => {
    onTestFailed(() => console.log(cluster.logTail(30)));
    const { id, bytes } = big;
    const diskBefore = await nodesTotal('trove_node_blob_disk_read_bytes_total');
    const sentBefore = await nodesTotal('trove_node_blob_bytes_read_total');

    const deep = await getRange(id, `bytes=${DEEP.start}-${DEEP.end}`);
    expect(deep.status).toBe(206);
    expect(deep.headers['content-range']).toBe(`bytes ${DEEP.start}-${DEEP.end}/${SIZE}`);
    expect(deep.body.equals(bytes)).toBe(true);

    const first = await getRange(id, 'bytes=0-0');
    expect(first.status).toBe(206);
    expect(first.body).toEqual(Buffer.from([0xff]));

    // The nodes' own count of what they read from disk: two blocks and one, plus
    // the sidecar's header and digests, where a whole-blob check reads 2 × 256 MiB.
    const diskRead = (await nodesTotal('trove_node_blob_disk_read_bytes_total')) - diskBefore;
    expect(diskRead).toBe(diskBytesFor(DEEP) + diskBytesFor({ start: 0, end: 0 }));
    expect((await nodesTotal('trove_node_blob_bytes_read_total')) - sentBefore).toBe(
      DEEP.end - DEEP.start + 2,
    );
    // The first replica served both: no replica missed its first-byte deadline.
    expect(readFileSync(cluster.gateway!.logFile, 'utf8')).not.toContain('replica read failed');
  });

  it('skip a replica whose first block of the range is corrupt: it answers 404 before a byte, and its repair is queued', async () => {
    onTestFailed(() => console.log(cluster.logTail(30)));
    const { id, bytes } = big;
    const [first] = rankNodes(id, cluster.nodes);
    const dir = join(first!.dataDir, 'blobs');
    const name = (await filesUnder(dir)).find((f) => /@[0-9a-f]{64}$/.test(f) && f.includes(id));
    await flipByte(join(dir, name!), Math.floor(DEEP.start / MiB) * MiB + 12345); // the range's first block

    const deep = await getRange(id, `bytes=${DEEP.start}-${DEEP.end}`);
    expect(deep.status).toBe(206);
    expect(deep.body.equals(bytes)).toBe(true);
    const gatewayLog = readFileSync(cluster.gateway!.logFile, 'utf8');
    expect(gatewayLog).toMatch(
      new RegExp(`"node":"${first!.id}".*"msg":"replica missing on node; queueing its repair"`),
    );
    const quarantined = await filesUnder(join(first!.dataDir, 'quarantine'));
    expect(quarantined.map((f) => f.replace(/\.\d+/, '.<t>')).sort()).toEqual([
      `${name!.split('/').pop()}.<t>`,
      `${name!.split('/').pop()}.<t>.blocks`,
    ]);
  });
});

/**
 * Mid-stream download failover against real processes: the storage node
 * serving a large download is killed with SIGKILL while the client is part
 * way through, and the client still receives exactly the file (or the range it
 * asked for), because the gateway carries on from the next replica.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { rankNodes } from '../shared/placement.js';
import { filesUnder, jpegStream, startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

function showLogsOnFailure() {
  onTestFailed(() => console.log(cluster.logTail()));
}

const SIZE = 64 * 1024 * 1024;

interface Uploaded {
  id: string;
  size: number;
  sha256: string;
  /** sha256 of bytes [range.start..range.end] of the upload, when asked for. */
  rangeSha256?: string;
}

/** Uploads SIZE random JPEG-looking bytes, hashing `range` of them on the way if given. */
async function uploadBig(range?: { start: number; end: number }, size = SIZE): Promise<Uploaded> {
  const payload = jpegStream(size);
  const rangeHash = createHash('sha256');
  let offset = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (range) {
        const from = Math.max(range.start, offset);
        const to = Math.min(range.end + 1, offset + chunk.length);
        if (from < to) rangeHash.update(chunk.subarray(from - offset, to - offset));
      }
      offset += chunk.length;
      done(null, chunk);
    },
  });
  const res = await request(`${cluster.gatewayUrl}/upload/big.jpg?max_downloads=0`, {
    method: 'PUT',
    body: payload.stream.pipe(tap),
    headers: { 'content-length': String(size) },
  });
  const body = (await res.body.json()) as any;
  expect(res.statusCode).toBe(201);
  expect(body.sha256).toBe(payload.digest());
  expect(body.replicas.every((r: any) => r.state === 'ok')).toBe(true);
  return {
    id: body.id,
    size: body.size,
    sha256: body.sha256,
    rangeSha256: range && rangeHash.digest('hex'),
  };
}

/** Read order of `id` while every node is online: placement order. */
const readOrder = (id: string) => rankNodes(id, cluster.nodes).map((n) => n.id);

async function allOnline(): Promise<void> {
  await waitFor('every node online', async () => {
    const view = (await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as any;
    return view.nodes.every((n: any) => n.status === 'online');
  });
}

/** Restarts every node that is not running and waits until the gateway sees them all online. */
async function reviveAll(): Promise<void> {
  for (const node of cluster.nodes) {
    const proc = node.proc?.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null)
      await cluster.startNode(node.id);
  }
  await allOnline();
}

/** A download the test reads at its own pace: nothing is pulled between `read` calls. */
async function startDownload(id: string, headers: Record<string, string> = {}) {
  const res = await request(`${cluster.gatewayUrl}/download/${id}`, { headers });
  const chunks = res.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const hash = createHash('sha256');
  let received = 0;
  return {
    res,
    received: () => received,
    /** Reads until at least `bytes` in all have arrived (or the body ends); false at the end. */
    async readUntil(bytes: number, each?: () => boolean): Promise<boolean> {
      while (received < bytes) {
        const { done, value } = await chunks.next();
        if (done) return false;
        hash.update(value);
        received += value.length;
        if (each?.()) break;
      }
      return true;
    },
    async rest(): Promise<{ size: number; sha256: string }> {
      await this.readUntil(Infinity);
      return { size: received, sha256: hash.digest('hex') };
    },
  };
}

/** The gateway's log lines about failing over `id` mid-stream. */
function failoverLines(id: string): { msg: string; node: string; at?: number; from?: number }[] {
  return readFileSync(cluster.gateway!.logFile, 'utf8')
    .split('\n')
    .filter((line) => line.includes(id))
    .map((line) => JSON.parse(line))
    .filter((l) => l.msg === 'replica failed mid-stream' || l.msg === 'download resumed');
}

/**
 * The failover lines of `id` once there are at least `count`: the gateway's
 * log reaches its file a moment after the bytes reach the client.
 */
function loggedFailover(id: string, count: number): Promise<ReturnType<typeof failoverLines>> {
  return waitFor(`the gateway logging ${count} failover lines`, async () => {
    const lines = failoverLines(id);
    return lines.length >= count && lines;
  });
}

/**
 * Lets the pipeline from node to client fill a little while the client reads
 * nothing, so the node dies with bytes in flight. Short: loopback receive
 * buffers grow to 32 MiB here (net.ipv4.tcp_rmem), and a longer pause let a
 * whole 39 MB range reach the gateway before the kill (no failover to test).
 */
const settle = () => new Promise((r) => setTimeout(r, 100));

describe('mid-stream download failover', () => {
  it('completes a full download when the serving node is killed part way', async () => {
    showLogsOnFailure();
    await reviveAll();
    const file = await uploadBig();
    const [serving, next] = readOrder(file.id);

    const dl = await startDownload(file.id);
    expect(dl.res.statusCode).toBe(200);
    expect(dl.res.headers['content-length']).toBe(String(SIZE));
    expect(await dl.readUntil(4 * 1024 * 1024)).toBe(true);
    await settle();
    await cluster.kill(serving!, 'SIGKILL');

    expect(await dl.rest()).toEqual({ size: file.size, sha256: file.sha256 });
    const lines = await loggedFailover(file.id, 2);
    expect(lines.find((l) => l.msg === 'replica failed mid-stream')).toMatchObject({
      node: serving,
    });
    const resumed = lines.find((l) => l.msg === 'download resumed')!;
    expect(resumed).toMatchObject({ node: next });
    expect(resumed.from).toBeGreaterThan(0);
    expect(resumed.from).toBeLessThan(SIZE);
  });

  it('completes a range request when the serving node is killed inside the range', async () => {
    showLogsOnFailure();
    await reviveAll();
    const range = { start: 1_000_000, end: 60_000_000 };
    const file = await uploadBig(range);
    const [serving, next] = readOrder(file.id);

    const dl = await startDownload(file.id, { range: `bytes=${range.start}-${range.end}` });
    expect(dl.res.statusCode).toBe(206);
    expect(dl.res.headers['content-range']).toBe(`bytes ${range.start}-${range.end}/${SIZE}`);
    expect(await dl.readUntil(3 * 1024 * 1024)).toBe(true);
    await settle();
    await cluster.kill(serving!, 'SIGKILL');

    expect(await dl.rest()).toEqual({
      size: range.end - range.start + 1,
      sha256: file.rangeSha256,
    });
    const lines = await loggedFailover(file.id, 2);
    const resumed = lines.find((l) => l.msg === 'download resumed')!;
    expect(resumed).toMatchObject({ node: next });
    expect(resumed.from).toBeGreaterThan(range.start);
    expect(resumed.from).toBeLessThanOrEqual(range.end);
  });

  it('goes on through every replica when the next one dies too', async () => {
    showLogsOnFailure();
    await reviveAll();
    const file = await uploadBig();
    const [first, second, third] = readOrder(file.id);

    const dl = await startDownload(file.id);
    expect(dl.res.statusCode).toBe(200);
    expect(await dl.readUntil(2 * 1024 * 1024)).toBe(true);
    await settle();
    await cluster.kill(first!, 'SIGKILL');
    // Read on until the gateway has moved to the second replica, then kill that one too.
    const resumedOnSecond = () =>
      failoverLines(file.id).some((l) => l.msg === 'download resumed' && l.node === second);
    expect(await dl.readUntil(SIZE, resumedOnSecond)).toBe(true);
    expect(resumedOnSecond()).toBe(true);
    await settle();
    await cluster.kill(second!, 'SIGKILL');

    expect(await dl.rest()).toEqual({ size: file.size, sha256: file.sha256 });
    const lines = await loggedFailover(file.id, 4);
    const failed = lines.filter((l) => l.msg === 'replica failed mid-stream');
    expect(failed.map((l) => l.node)).toEqual([first, second]);
    expect(lines.at(-1)).toMatchObject({ msg: 'download resumed', node: third });
  });
});

describe('a corrupt replica cut off mid-stream', () => {
  /** Flips one byte, at `offset`, of the copy of `id` on `nodeId`. */
  async function corrupt(id: string, nodeId: string, offset: number): Promise<void> {
    const node = cluster.nodes.find((n) => n.id === nodeId)!;
    const [name] = (await filesUnder(join(node.dataDir, 'blobs'))).filter(
      (f) => f.includes(`${id}@`) && !f.endsWith('.blocks'), // not its block sums
    );
    const path = join(node.dataDir, 'blobs', name!);
    const bytes = await readFile(path);
    bytes[offset]! ^= 0xff;
    await writeFile(path, bytes);
  }

  /** Removes the block sums of the copy of `id` on `nodeId`, as for a blob stored before they existed. */
  async function dropSums(id: string, nodeId: string): Promise<void> {
    const node = cluster.nodes.find((n) => n.id === nodeId)!;
    const [name] = (await filesUnder(join(node.dataDir, 'blobs'))).filter(
      (f) => f.includes(`${id}@`) && f.endsWith('.blocks'),
    );
    await rm(join(node.dataDir, 'blobs', name!));
  }

  const CORRUPT_SIZE = 8 * 1024 * 1024;
  /** A byte past the first 1 MiB blocks (damage in the first block fails before any byte). */
  const PAST_FIRST_BLOCKS = 5 * 1024 * 1024 + 1000;

  /**
   * Uploads an 8 MiB file (tracking `range`'s sha256 too) and flips the byte at
   * `at` in the copy of the node first in read order, after removing that
   * copy's block sums when `withoutSums`; answers the file and that node.
   */
  async function uploadCorrupted(o: {
    range?: { start: number; end: number };
    at: number;
    withoutSums?: boolean;
  }) {
    await reviveAll();
    const file = await uploadBig(o.range, CORRUPT_SIZE);
    const [first] = readOrder(file.id);
    if (o.withoutSums) await dropSums(file.id, first!);
    await corrupt(file.id, first!, o.at);
    return { file, first: first!, size: CORRUPT_SIZE };
  }

  // A node checks a large blob block by block before sending each block: a bad block past
  // the first cuts the stream after only good bytes, so the next replica completes them.
  it('completes a whole file from the next replica after a node cut it at a bad block', async () => {
    showLogsOnFailure();
    const { file, first, size } = await uploadCorrupted({ at: PAST_FIRST_BLOCKS });

    const got = await startDownload(file.id);
    expect(got.res.statusCode).toBe(200);
    expect(await got.rest()).toEqual({ size, sha256: file.sha256 });
    const lines = await loggedFailover(file.id, 2);
    expect(lines.map((l) => [l.msg, l.node])).toEqual([
      ['replica failed mid-stream', first],
      ['download resumed', expect.any(String)],
    ]);
    // From the first byte of the bad block: the good ones before it were sent.
    expect(lines[0]!.at).toBe(5 * 1024 * 1024);
  });

  it('resumes a range after a live node cut it at a bad block', async () => {
    showLogsOnFailure();
    const range = { start: 500, end: CORRUPT_SIZE - 500 };
    const { file } = await uploadCorrupted({ range, at: PAST_FIRST_BLOCKS });

    const got = await startDownload(file.id, { range: `bytes=${range.start}-${range.end}` });
    expect(got.res.statusCode).toBe(206);
    expect(await got.rest()).toEqual({
      size: range.end - range.start + 1,
      sha256: file.rangeSha256,
    });
    expect((await loggedFailover(file.id, 2)).map((l) => l.msg)).toEqual([
      'replica failed mid-stream',
      'download resumed',
    ]);
  });

  // Without block sums, the node streams its blob until its own whole-file check fails at the
  // end, then cuts the stream: the bytes it sent include the flipped one, and the other
  // replicas would complete them.
  it('never yields a complete whole file from a copy without block sums: the gateway checks its sha256', async () => {
    showLogsOnFailure();
    const { file, size } = await uploadCorrupted({ at: 1000, withoutSums: true });

    const got = await startDownload(file.id);
    expect(got.res.statusCode).toBe(200);
    await expect(got.rest()).rejects.toThrow();
    expect(got.received()).toBeLessThan(size);
    // The gateway's log may trail the client's view of the cut by a moment.
    await waitFor('the gateway to try the next replica', async () =>
      failoverLines(file.id).some((l) => l.msg === 'download resumed'),
    );
    await waitFor('the gateway to log the failed checksum', async () =>
      cluster.errorLines('gateway').some((l) => l.includes(file.id) && l.includes('checksum')),
    );

    // The node quarantined its copy: the next download is served whole by another replica.
    const again = await startDownload(file.id);
    expect(await again.rest()).toEqual({ size, sha256: file.sha256 });
  });

  it('ends a range short rather than resume after a live node without block sums cut it', async () => {
    showLogsOnFailure();
    const range = { start: 500, end: CORRUPT_SIZE - 500 };
    const { file } = await uploadCorrupted({ range, at: PAST_FIRST_BLOCKS, withoutSums: true });

    const got = await startDownload(file.id, { range: `bytes=${range.start}-${range.end}` });
    expect(got.res.statusCode).toBe(206);
    await expect(got.rest()).rejects.toThrow();
    expect(got.received()).toBeLessThan(range.end - range.start + 1);
    await waitFor('the gateway to log the cut', async () => failoverLines(file.id).length > 0);
    expect(failoverLines(file.id).map((l) => l.msg)).toEqual(['replica failed mid-stream']);

    const again = await startDownload(file.id, { range: `bytes=${range.start}-${range.end}` });
    expect(await again.rest()).toEqual({
      size: range.end - range.start + 1,
      sha256: file.rangeSha256,
    });
  });

  it('still serves a file whose every copy is recorded missing but is on disk (stale states)', async () => {
    showLogsOnFailure();
    await reviveAll();
    const file = await uploadBig(undefined, 1024 * 1024);
    // As an anti-entropy pass racing the upload once left it: every row `missing`, no repair yet.
    const db = new Database(cluster.dbPath);
    db.pragma('busy_timeout = 5000');
    db.prepare(`UPDATE replicas SET state = 'missing' WHERE key = ?`).run(file.id);
    db.close();
    const got = await startDownload(file.id);
    expect(got.res.statusCode).toBe(200);
    expect(await got.rest()).toEqual({ size: 1024 * 1024, sha256: file.sha256 });
  });
});

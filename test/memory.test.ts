/**
 * Memory under large transfers, on a real cluster with a worker: a 320 MiB
 * file goes in (one streamed upload, three replicas, the worker fetching the
 * original for its image job) and out (two downloads at once). No process may
 * grow, above its own resting RSS, by more than a fraction of the file: one
 * that held the file, or a good part of it, would grow by hundreds of MB,
 * where streaming costs a few tens (young Buffers waiting for a scavenge,
 * chunks in flight). Peaks are exact: each process's VmHWM is reset at rest
 * (/proc/<pid>/clear_refs) and read after.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { metricValue, scrape } from './metrics-text.js';
import { hashBody, jpegStream, memoryOf, startCluster, waitFor, type Cluster } from './harness.js';

const MiB = 2 ** 20;
const SIZE = 320 * MiB;
/** Growth allowed above rest: under a third of the file, three times what streaming was measured to take. */
const MAX_GROWTH = 100 * MiB;
const PROCESSES = ['gateway', 'node1', 'node2', 'node3', 'worker'] as const;

let cluster: Cluster;

beforeAll(async () => {
  // As npm start runs them (scripts/start.ts): two malloc arenas.
  cluster = await startCluster({ worker: true, env: { MALLOC_ARENA_MAX: '2' } });
});
afterAll(async () => {
  await cluster?.stop();
});

const pidOf = (name: string) => cluster.proc(name)!.proc.pid!;
const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

/** Makes VmHWM start again from the current RSS, so the next read is this phase's peak. */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

async function nodeCounters() {
  return Promise.all(
    cluster.nodes.map(async (n) => {
      const samples = await scrape(`${n.url}/metrics`);
      return {
        written: metricValue(samples, 'trove_node_blob_bytes_written_total'),
        read: metricValue(samples, 'trove_node_blob_bytes_read_total'),
      };
    }),
  );
}

async function download(id: string) {
  const res = await request(`${cluster.gatewayUrl}/download/${id}`);
  expect(res.statusCode).toBe(200);
  return hashBody(res.body);
}

describe('memory under large transfers', () => {
  it('grows no process by more than a fraction of a 320 MiB file moved in and out', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const rest = Object.fromEntries(PROCESSES.map((n) => [n, memoryOf(pidOf(n)).rss]));
    for (const name of PROCESSES) resetPeak(pidOf(name));
    const countersBefore = await nodeCounters();

    const payload = jpegStream(SIZE);
    const up = await request(`${cluster.gatewayUrl}/upload/big.jpg?max_downloads=0`, {
      method: 'PUT',
      body: payload.stream,
      headers: { 'content-length': String(SIZE) },
    });
    const file = (await up.body.json()) as { id: string; size: number; sha256: string };
    expect(up.statusCode).toBe(201);
    expect(file).toMatchObject({ size: SIZE, sha256: payload.digest() });

    const downloads = await Promise.all([download(file.id), download(file.id)]);
    for (const got of downloads) expect(got).toEqual({ sha256: payload.digest(), size: SIZE });

    // The worker fetches the whole original before it finds it is no image.
    const processing = await waitFor(
      'the worker to finish with the upload',
      async () => {
        const res = await fetch(`${cluster.gatewayUrl}/files/${file.id}`);
        const body = (await res.json()) as { processing: { state: string; reason?: string } };
        return body.processing.state !== 'pending' && body.processing;
      },
      60_000,
    );
    expect(processing).toMatchObject({ state: 'failed', reason: expect.stringMatching(/corrupt/) });

    const growth = Object.fromEntries(
      PROCESSES.map((n) => [n, memoryOf(pidOf(n)).peak - rest[n]!]),
    );
    console.log(
      `RSS at rest → peak: ${PROCESSES.map((n) => `${n} ${mb(rest[n]!)} → ${mb(rest[n]! + growth[n]!)}`).join(', ')}`,
    );

    // Every process moved the bytes: three replicas written, two downloads and the worker's fetch read.
    const countersAfter = await nodeCounters();
    const delta = countersAfter.map((c, i) => ({
      written: c.written - countersBefore[i]!.written,
      read: c.read - countersBefore[i]!.read,
    }));
    for (const d of delta) expect(d.written).toBe(SIZE);
    expect(delta.reduce((sum, d) => sum + d.read, 0)).toBeGreaterThanOrEqual(3 * SIZE);

    for (const name of PROCESSES) {
      expect(growth[name], `${name} grew by ${mb(growth[name]!)}`).toBeLessThan(MAX_GROWTH);
    }
  });
});

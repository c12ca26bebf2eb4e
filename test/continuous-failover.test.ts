/**
 * The promise of the whole design, under load: downloads and uploads at
 * concurrency 8 keep going while a storage node is killed with `kill -9`,
 * with zero failed requests and zero wrong bytes.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { rankNodes } from '../shared/placement.js';
import { fixture, sha256, startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ worker: true });
});
afterAll(async () => {
  await cluster?.stop();
});

let seq = 0;
const image = () =>
  Buffer.concat([fixture('photo.jpg'), Buffer.from(`load-${seq++}-${Date.now()}`)]);

interface Uploaded {
  id: string;
  sha256: string;
  replicas: { node: string; state: string }[];
}

/** What the client got, in full, so that a failed request names itself. */
function described(what: string, res: Response, text: string): string {
  const headers = JSON.stringify(Object.fromEntries(res.headers));
  return `${what}: ${res.status} headers=${headers} body=${JSON.stringify(text.slice(0, 300))}`;
}

async function upload(data: Buffer, requestId?: string): Promise<Uploaded> {
  const res = await fetch(`${cluster.gatewayUrl}/upload/l.jpg?max_downloads=0`, {
    method: 'PUT',
    body: data,
    headers: requestId ? { 'x-request-id': requestId } : {},
  });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(described('upload answered no JSON', res, text));
  }
  if (res.status !== 201) throw new Error(described('upload failed', res, text));
  return { id: body.id, sha256: sha256(data), replicas: body.replicas };
}

/** One request of the load: when it ran, and what it did. */
interface Done {
  kind: 'upload' | 'download';
  started: number;
  ended: number;
  file: Uploaded;
}

/**
 * The blobs a node's log shows it stored (PUT 201) or served (GET 200/206)
 * for client requests whose X-Request-Id starts with `prefix` (the worker's
 * reads and writes carry the ids of the uploads that queued them: not those).
 */
function nodeRequests(node: string, method: 'PUT' | 'GET', prefix: string): string[] {
  const ok = method === 'PUT' ? [201] : [200, 206];
  return readFileSync(cluster.proc(node)!.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"request"') && l.includes(`"request_id":"${prefix}`))
    .map((l) => JSON.parse(l))
    .filter(
      (l) =>
        l.method === method && l.path.startsWith('/blobs/') && ok.includes(l.status) && !l.aborted,
    )
    .map((l) => l.path.slice('/blobs/'.length));
}

describe('kill -9 under load', () => {
  it('fails no request and serves no wrong byte while a node dies', async () => {
    onTestFailed(() => console.log(cluster.logTail(60)));
    const files: Uploaded[] = [];
    for (let i = 0; i < 24; i++) files.push(await upload(image()));

    const failures: string[] = [];
    const done: Done[] = [];
    let running = true;
    const client = async (n: number) => {
      for (let i = 0; running; i++) {
        const started = Date.now();
        try {
          if ((i + n) % 3 === 0) {
            const file = await upload(image(), `load-up-${n}-${i}`);
            files.push(file);
            done.push({ kind: 'upload', started, ended: Date.now(), file });
          } else {
            const file = files[(i * 7 + n) % files.length]!;
            const res = await fetch(`${cluster.gatewayUrl}/download/${file.id}`, {
              headers: { 'x-request-id': `load-dl-${n}-${i}` },
            });
            const got = Buffer.from(await res.arrayBuffer());
            if (res.status !== 200)
              failures.push(described(`download ${file.id}`, res, got.toString()));
            else if (sha256(got) !== file.sha256) failures.push(`download ${file.id}: wrong bytes`);
            else done.push({ kind: 'download', started, ended: Date.now(), file });
          }
        } catch (err) {
          failures.push(`${(err as Error).message} ${(err as Error).cause ?? ''}`);
        }
      }
    };
    const clients = Array.from({ length: 8 }, (_, n) => client(n));
    const node1Ok = (f: Uploaded) => f.replicas.some((r) => r.node === 'node1' && r.state === 'ok');
    // Reads go to the replica placement ranks first: node1, for these, while it had a copy.
    const node1Reads = (f: Uploaded) =>
      node1Ok(f) && rankNodes(f.id, cluster.nodes)[0]!.id === 'node1';
    // Ended by `to` includes its own millisecond: the kill is timed right after a probe
    // that counted a request ending in that same millisecond.
    const count = (kind: Done['kind'], from: number, to: number, which = (_: Uploaded) => true) =>
      done.filter((d) => d.kind === kind && d.started > from && d.ended <= to && which(d.file))
        .length;

    try {
      // node1 is in the path before it dies: it stored uploads of the load and served downloads.
      await waitFor(
        'node1 storing uploads and serving downloads of the load',
        async () =>
          failures.length > 0 ||
          (count('upload', 0, Infinity, node1Ok) >= 3 &&
            nodeRequests('node1', 'GET', 'load-dl-').length >= 3),
        60_000,
      );
      const killedAt = Date.now();
      await cluster.kill('node1', 'SIGKILL');
      // Traffic goes on: uploads and downloads (some of files node1 would have served) start
      // after the kill and complete.
      await waitFor(
        'uploads and downloads completing after the kill',
        async () =>
          failures.length > 0 ||
          (count('upload', killedAt, Infinity) >= 8 &&
            count('download', killedAt, Infinity) >= 16 &&
            count('download', killedAt, Infinity, node1Reads) >= 2),
        60_000,
      );
      running = false;
      await Promise.all(clients);

      expect(failures).toEqual([]);
      expect(count('upload', 0, killedAt, node1Ok)).toBeGreaterThanOrEqual(3);
      expect(nodeRequests('node1', 'GET', 'load-dl-').length).toBeGreaterThanOrEqual(3);
      // Requests in flight when node1 died completed too.
      expect(done.filter((d) => d.started < killedAt && d.ended > killedAt).length).toBeGreaterThan(
        0,
      );
      expect(count('upload', killedAt, Infinity)).toBeGreaterThanOrEqual(8);
      expect(count('download', killedAt, Infinity)).toBeGreaterThanOrEqual(16);
      expect(count('download', killedAt, Infinity, node1Reads)).toBeGreaterThanOrEqual(2);
      // No upload after the kill counts a copy on node1.
      expect(count('upload', killedAt, Infinity, node1Ok)).toBe(0);
    } finally {
      running = false;
      await Promise.all(clients);
    }

    // Everything uploaded, before or during the kill, is still there.
    for (const f of files) {
      const res = await fetch(`${cluster.gatewayUrl}/download/${f.id}`);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(f.sha256);
    }
  });
});

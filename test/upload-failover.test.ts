/**
 * An upload in flight when a storage node dies with `kill -9` still succeeds,
 * whichever node of its chain it was: a successor is replayed by its
 * predecessor, a dead head by the gateway from its spool.
 */
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { hashBody, jpegStream, startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ env: { LOG_LEVEL: 'debug' } });
});
afterAll(async () => {
  await cluster?.stop();
});

/** The node a fresh write reached first (its hop-0 log line), after `since` lines per node. */
function headOfNewWrite(since: Map<string, number>): string | undefined {
  for (const node of cluster.nodes) {
    const lines = readFileSync(node.proc!.logFile, 'utf8').split('\n').slice(since.get(node.id));
    if (lines.some((l) => l.includes('"hop":0') && l.includes('blob write started')))
      return node.id;
  }
  return undefined;
}

const logLengths = () =>
  new Map(
    cluster.nodes.map((n) => [n.id, readFileSync(n.proc!.logFile, 'utf8').split('\n').length - 1]),
  );

/** Starts a 48 MB upload, kills the node `pick` chooses once bytes flow, and returns the answer. */
async function uploadWhileKilling(pick: (head: string) => string) {
  const size = 48 * 1024 * 1024;
  const payload = jpegStream(size, 256 * 1024);
  const since = logLengths();
  const answer = request(`${cluster.gatewayUrl}/upload/big.jpg?max_downloads=0`, {
    method: 'PUT',
    body: payload.stream,
    headers: { 'content-length': String(size) },
  });
  const head = await waitFor('a chain head', async () => headOfNewWrite(since));
  const victim = pick(head);
  await new Promise((r) => setTimeout(r, 150)); // mid-stream
  await cluster.kill(victim, 'SIGKILL');
  const res = await answer;
  const body = (await res.body.json()) as any;
  await cluster.startNode(victim);
  return { status: res.statusCode, body, sha256: payload.digest(), size, victim };
}

describe('uploads across a node death', () => {
  it('completes when the chain head dies mid-stream', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const up = await uploadWhileKilling((head) => head);
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect(up.body.sha256).toBe(up.sha256);
    const ok = up.body.replicas.filter((r: any) => r.state === 'ok');
    expect(ok.length).toBeGreaterThanOrEqual(2);
    expect(ok.map((r: any) => r.node)).not.toContain(up.victim);
    // It really died mid-stream: the gateway had to replay the upload.
    expect(readFileSync(cluster.gateway!.logFile, 'utf8')).toContain('replaying from the spool');
    const res = await request(`${cluster.gatewayUrl}/download/${up.body.id}`);
    expect(await hashBody(res.body)).toEqual({ sha256: up.sha256, size: up.size });
  });

  it('completes when a node behind the head dies mid-stream', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const up = await uploadWhileKilling((head) => cluster.nodes.find((n) => n.id !== head)!.id);
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect(up.body.sha256).toBe(up.sha256);
    const res = await request(`${cluster.gatewayUrl}/download/${up.body.id}`);
    expect(await hashBody(res.body)).toEqual({ sha256: up.sha256, size: up.size });
  });
});

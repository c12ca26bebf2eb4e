/**
 * Expiry and deletion against real processes and a real RabbitMQ: 410 at
 * once after expiry, blobs gone from every disk (also from a node that was
 * down at the time), owner deletion with its token, and jobs that survive a
 * worker `kill -9` and a broker-side connection close. The second cluster
 * runs with the sweep effectively off, so what it checks is done by the
 * delayed messages alone.
 */
import amqp, { type GetMessage } from 'amqplib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ladderSteps, topologyNames } from '../shared/jobs.js';
import {
  closeAmqpConnections,
  filesUnder,
  fixture,
  logLines,
  METADATA_KINDS,
  queueCounts,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

interface Uploaded {
  id: string;
  delete_token: string;
  expires_at: string;
}

let seq = 0;
async function upload(
  cluster: Cluster,
  query: string,
  headers: Record<string, string> = {},
): Promise<Uploaded> {
  const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`expiry-${seq++}-${Date.now()}`)]);
  const res = await fetch(`${cluster.gatewayUrl}/upload/e.jpg?${query}`, {
    method: 'PUT',
    body: data,
    headers,
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Uploaded;
}

/** Nodes whose disk holds a blob of file `id` (original or variant). */
async function nodesHolding(cluster: Cluster, id: string): Promise<string[]> {
  const holders: string[] = [];
  for (const node of cluster.nodes) {
    const files = await filesUnder(join(node.dataDir, 'blobs'));
    if (files.some((f) => f.includes(`${id}@`) || f.includes(`${id}.`))) holders.push(node.id);
  }
  return holders;
}

const replicaRows = async (cluster: Cluster, id: string) =>
  (await cluster.query<{ node: string }>(`SELECT node FROM replicas WHERE file_id = '${id}'`)).map(
    (r) => r.node,
  );

/** A small PDF (allowed in the second cluster): stored as it is, no image variants made. */
async function uploadPdf(cluster: Cluster, query: string): Promise<Uploaded> {
  const data = Buffer.from(
    `%PDF-1.4\n1 0 obj <<>> endobj\n% expiry-${seq++}-${Date.now()}\n%%EOF\n`,
  );
  const res = await fetch(`${cluster.gatewayUrl}/upload/e.pdf?${query}`, {
    method: 'PUT',
    body: data,
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Uploaded;
}

async function errorOf(res: Response): Promise<string> {
  return ((await res.json()) as any).error.code;
}

/** Everything a process of the cluster (and those of the same name before it) logged. */
const logText = (cluster: Cluster, name: string) =>
  readFileSync(cluster.proc(name)!.logFile, 'utf8');

/** How many times a process of the cluster has logged `text`. */
const logCount = (cluster: Cluster, name: string, text: string) =>
  logText(cluster, name).split(text).length - 1;

const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

describe.each(METADATA_KINDS)('expiry and deletion (%s metadata)', (metadata) => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ worker: true, metadata });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const showLogs = () => onTestFailed(() => console.log(cluster.logTail()));

  it('answers 410 right after expiry and removes the blobs from every node', async () => {
    showLogs();
    // Long enough to download it once before it expires, on a loaded machine too.
    const file = await upload(cluster, 'ttl=4&max_downloads=0');
    expect(await nodesHolding(cluster, file.id)).toHaveLength(3);
    expect((await fetch(`${cluster.gatewayUrl}/download/${file.id}`)).status).toBe(200);

    await sleepUntil(Date.parse(file.expires_at) + 20);
    const res = await fetch(`${cluster.gatewayUrl}/download/${file.id}`);
    expect(res.status).toBe(410);
    expect(await errorOf(res)).toBe('FILE_EXPIRED');

    await waitFor('blobs gone', async () => (await nodesHolding(cluster, file.id)).length === 0);
    // Each node's row goes right after its blob: a moment later than the last blob.
    await waitFor('rows gone', async () => (await replicaRows(cluster, file.id)).length === 0);
    const meta = (await (await fetch(`${cluster.gatewayUrl}/files/${file.id}`)).json()) as any;
    expect(meta.status).toBe('deleted');
    // The tombstone keeps the answer a 410, not a 404.
    expect((await fetch(`${cluster.gatewayUrl}/download/${file.id}`)).status).toBe(410);
  });

  it('deletes the blob of a node that was down at the time once it is back', async () => {
    showLogs();
    const file = await upload(cluster, 'ttl=2');
    await cluster.kill('node3', 'SIGKILL');
    try {
      await sleepUntil(Date.parse(file.expires_at));
      await waitFor(
        'live nodes emptied',
        async () => (await nodesHolding(cluster, file.id)).join() === 'node3',
      );
      // The deletes still owed: the original's and its variants', all on node3 (each live
      // node's rows go right after its blobs).
      await waitFor('only node3 rows left', async () =>
        (await replicaRows(cluster, file.id)).every((node) => node === 'node3'),
      );
      expect(new Set(await replicaRows(cluster, file.id))).toEqual(new Set(['node3']));
    } finally {
      await cluster.startNode('node3');
    }
    await waitFor('node3 emptied', async () => (await nodesHolding(cluster, file.id)).length === 0);
    await waitFor('debt settled', async () => (await replicaRows(cluster, file.id)).length === 0);
  });

  it('deletes at once with the delete token, and refuses without it', async () => {
    showLogs();
    const file = await upload(cluster, 'ttl=3600');
    const url = `${cluster.gatewayUrl}/files/${file.id}`;

    const missing = await fetch(url, { method: 'DELETE' });
    expect(missing.status).toBe(403);
    expect(await errorOf(missing)).toBe('DELETE_TOKEN_REQUIRED');
    const wrong = await fetch(url, { method: 'DELETE', headers: { 'x-delete-token': 'nope' } });
    expect(wrong.status).toBe(403);
    expect(await errorOf(wrong)).toBe('WRONG_DELETE_TOKEN');
    expect((await fetch(`${cluster.gatewayUrl}/download/${file.id}`)).status).toBe(200);

    const headers = { 'x-delete-token': file.delete_token };
    expect((await fetch(url, { method: 'DELETE', headers })).status).toBe(204);
    const gone = await fetch(`${cluster.gatewayUrl}/download/${file.id}`);
    expect(gone.status).toBe(410);
    expect(await errorOf(gone)).toBe('FILE_DELETED');
    await waitFor('blobs gone', async () => (await nodesHolding(cluster, file.id)).length === 0);
    expect((await fetch(url, { method: 'DELETE', headers })).status).toBe(204); // idempotent
    expect((await fetch(`${cluster.gatewayUrl}/files/nope`, { method: 'DELETE' })).status).toBe(
      404,
    );
  });

  it('dead-letters a malformed job and drops one about an unknown file, and keeps running', async () => {
    showLogs();
    const names = topologyNames(cluster.clusterName);
    const conn = await amqp.connect(AMQP_URL);
    try {
      const ch = await conn.createConfirmChannel();
      const send = (body: string) =>
        new Promise<void>((resolve, reject) =>
          ch.sendToQueue(names.fileDelete, Buffer.from(body), { persistent: true }, (err) =>
            err ? reject(err) : resolve(),
          ),
        );
      await send('{not json');
      await send(JSON.stringify({ fileId: '../../etc/passwd', due: 0 }));
      await send(JSON.stringify({ fileId: 'A'.repeat(22), due: 0 }));
      await waitFor(
        'two dead letters',
        async () => (await ch.checkQueue(names.deadLetters)).messageCount === 2,
      );
      await waitFor(
        'work queue drained',
        async () => (await ch.checkQueue(names.fileDelete)).messageCount === 0,
      );
    } finally {
      await conn.close();
    }
    expect(cluster.proc('worker')!.proc.exitCode).toBeNull();
    // Still working: a new deletion goes through.
    const file = await upload(cluster, 'ttl=1');
    await waitFor('blobs gone', async () => (await nodesHolding(cluster, file.id)).length === 0);
  });
  it('deletes an expired file whose deletion message was lost: the sweep does it', async () => {
    showLogs();
    const names = topologyNames(cluster.clusterName);
    // No worker, so nothing moves the job along while it is taken out.
    await cluster.kill('worker', 'SIGTERM');
    const requestId = `lost-message-${Date.now()}`;
    const file = await upload(cluster, 'ttl=3', { 'x-request-id': requestId });
    // Every deletion job of this file, wherever it waits (the ladder first: a
    // job only ever moves from there to the work queue), is taken out and
    // lost; other files' jobs go back where they were.
    const lost: unknown[] = [];
    const conn = await amqp.connect(AMQP_URL);
    try {
      const ch = await conn.createChannel();
      const others: GetMessage[] = [];
      for (const queue of [...ladderSteps.map(names.delayQueue), names.fileDelete])
        for (let msg; (msg = await ch.get(queue, { noAck: false }));) {
          const job = JSON.parse(msg.content.toString()) as { fileId: string };
          if (job.fileId !== file.id) others.push(msg);
          else {
            lost.push(job);
            ch.ack(msg);
          }
        }
      for (const msg of others) ch.nack(msg, false, true);
      await ch.close();
    } finally {
      await conn.close();
    }
    expect(lost).toEqual([{ fileId: file.id, due: Date.parse(file.expires_at) }]);
    await cluster.startWorker();

    // The worker logs 'file blobs deleted' after it forgot the last replica row,
    // and its log reaches the file later still: wait for the line too.
    await waitFor(
      'every blob gone, no delete owed, and the worker saying so',
      async () =>
        (await nodesHolding(cluster, file.id)).length === 0 &&
        (await replicaRows(cluster, file.id)).length === 0 &&
        logLines(cluster, 'worker', (l) => l.msg === 'file blobs deleted' && l.id === file.id)
          .length > 0,
      30_000,
    );
    // The sweep did it: the tombstone and the deletes ran in its runs, not in
    // a job (which would carry the upload's request id).
    const sweeps = new Set(
      logLines(cluster, 'worker', (l) => l.msg === 'expiry sweep').map((l) => l.request_id),
    );
    for (const msg of ['file expired', 'file blobs deleted']) {
      const lines = logLines(cluster, 'worker', (l) => l.msg === msg && l.id === file.id);
      expect(lines.length, msg).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line.request_id, msg).not.toBe(requestId);
        expect(sweeps.has(line.request_id), `${msg} in a sweep run`).toBe(true);
      }
    }
    expect(
      (await (await fetch(`${cluster.gatewayUrl}/download/${file.id}`)).json()) as any,
    ).toMatchObject({ error: { code: 'FILE_EXPIRED' } });
  });
});

describe('delayed deletion messages (sweep off)', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    // Hourly at minute 59, second 59: never during a test run in practice.
    cluster = await startCluster({
      worker: true,
      env: { SWEEP_SCHEDULE: '59 59 * * * *', ALLOWED_TYPES: 'image/*,application/pdf' },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const showLogs = () => onTestFailed(() => console.log(cluster.logTail()));

  it('expires a short TTL uploaded after a long one on time', async () => {
    showLogs();
    const long = await upload(cluster, 'ttl=3600');
    const short = await upload(cluster, 'ttl=2');
    const expiry = Date.parse(short.expires_at);
    await waitFor('short gone', async () => (await nodesHolding(cluster, short.id)).length === 0);
    // Due at expiry + 1 s grace; the ladder adds at most 250 ms per stage. Generous slack for CI.
    expect(Date.now() - expiry).toBeLessThan(8000);
    expect(await nodesHolding(cluster, long.id)).toHaveLength(3);
  });

  it('redoes deletions a worker killed with -9 had in hand', async () => {
    showLogs();
    const queue = topologyNames(cluster.clusterName).fileDelete;
    const keep = await upload(cluster, 'ttl=3600');
    // A worker that waits two minutes for a node's answer, so a deletion it
    // started on a stopped node is still in its hands when it is killed.
    await cluster.kill('worker', 'SIGTERM');
    await cluster.startWorker('worker', { NODE_TIMEOUT_MS: '120000' });
    // Not images: no variant jobs that would write to the stopped node too.
    const doomed = await Promise.all(Array.from({ length: 8 }, () => uploadPdf(cluster, 'ttl=2')));
    const node3 = cluster.proc('node3')!.proc;
    node3.kill('SIGSTOP'); // its deletes connect and are never answered
    try {
      // Each job has deleted the copies on node1 and node2 and waits on node3's.
      await waitFor(
        'every deletion under way, stuck on node3',
        async () => {
          for (const f of doomed)
            if ((await replicaRows(cluster, f.id)).join() !== 'node3') return false;
          return true;
        },
        30_000,
      );
      // All 8 are delivered and unacknowledged: in the worker's hands, not done.
      expect(queueCounts(queue)).toEqual({ ready: 0, unacked: 8 });
      await cluster.kill('worker', 'SIGKILL');
      // The broker takes them back, undone.
      await waitFor('the 8 jobs handed back', async () => {
        const counts = queueCounts(queue);
        return counts.ready === 8 && counts.unacked === 0;
      });
      for (const f of doomed) expect(await nodesHolding(cluster, f.id)).toEqual(['node3']);
    } finally {
      node3.kill('SIGCONT');
    }
    const killedLog = logText(cluster, 'worker').length;
    await cluster.startWorker();
    // Gone from every disk, and no delete owed any more (a row goes once its node confirmed).
    for (const f of doomed)
      await waitFor(
        `${f.id} gone`,
        async () =>
          (await nodesHolding(cluster, f.id)).length === 0 &&
          (await replicaRows(cluster, f.id)).length === 0,
      );
    // The new worker finished each of them; the killed one never did.
    const log = logText(cluster, 'worker');
    const deleted = (text: string, id: string) =>
      text
        .split('\n')
        .some((l) => l.includes('"msg":"file blobs deleted"') && l.includes(`"id":"${id}"`));
    for (const f of doomed) {
      expect(deleted(log.slice(0, killedLog), f.id), f.id).toBe(false);
      expect(deleted(log.slice(killedLog), f.id), f.id).toBe(true);
    }
    expect(await nodesHolding(cluster, keep.id)).toHaveLength(3);
    expect((await fetch(`${cluster.gatewayUrl}/download/${keep.id}`)).status).toBe(200);
    expect(cluster.errorLines('worker')).toEqual([]);
  });

  it('stops cleanly on SIGTERM mid-work, leaving nothing undone for the next worker', async () => {
    showLogs();
    const doomed = await Promise.all(Array.from({ length: 8 }, () => upload(cluster, 'ttl=2')));
    const before = logCount(cluster, 'worker', 'file expired');
    await waitFor('work started', async () => logCount(cluster, 'worker', 'file expired') > before);
    const worker = cluster.proc('worker')!;
    await cluster.kill('worker', 'SIGTERM');
    expect(worker.proc.exitCode).toBe(0); // exited by itself, not killed after the harness's wait
    await cluster.startWorker();
    for (const f of doomed)
      await waitFor(`${f.id} gone`, async () => (await nodesHolding(cluster, f.id)).length === 0);
  });

  it('reconnects the gateway and the worker after RabbitMQ closes their connections', async () => {
    showLogs();
    const connected = (name: string) => logCount(cluster, name, 'RabbitMQ connected');
    const gw = connected('gateway');
    const wk = connected('worker');
    expect(await closeAmqpConnections(cluster, 'gateway')).toBe(1);
    expect(await closeAmqpConnections(cluster, 'worker')).toBe(1);
    await waitFor(
      'both reconnected',
      async () => connected('gateway') > gw && connected('worker') > wk,
    );
    const file = await upload(cluster, 'ttl=1');
    await waitFor('blobs gone', async () => (await nodesHolding(cluster, file.id)).length === 0);
  });
});

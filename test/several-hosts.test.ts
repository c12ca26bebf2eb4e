/**
 * Two hosts that share nothing but the network: host A (127.0.0.2) and host B
 * (127.0.0.3) each run a gateway and a worker with a STORAGE_DIR of their own
 * (pid files, spool, image temp files; no trove.db, DATABASE_URL is set), and
 * meet only in PostgreSQL (one database), Redis, RabbitMQ (one CLUSTER_NAME),
 * the CLUSTER_SECRET and the storage nodes (127.0.0.4-6). Download limits,
 * uploads and deletes, expiry and repair must come out as on one host: each
 * grant, tombstone and repaired copy made once, whichever host makes it.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { topologyNames } from '../shared/jobs.js';
import {
  filesUnder,
  fixture,
  logLines,
  queueCounts,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';

const ADMIN_TOKEN = 'several-hosts-admin-token';

interface Host {
  label: 'A' | 'B';
  address: string;
  dir: string;
  gateway: string;
  gatewayName: string;
  workerName: string;
}

interface Uploaded {
  id: string;
  delete_token: string;
  expires_at: string;
  sha256: string;
}

let cluster: Cluster;
const hosts: Host[] = [];
let seq = 0;

async function startHost(label: 'A' | 'B', address: string): Promise<Host> {
  const dir = await mkdtemp(join(tmpdir(), `trove-host-${label.toLowerCase()}-`));
  const gatewayName = `gateway${label}`;
  const workerName = `worker${label}`;
  const own = { STORAGE_DIR: dir };
  const gateway = await cluster.startGateway(gatewayName, { ...own, HOST: address });
  await cluster.startWorker(workerName, { ...own, WORKER_METRICS_HOST: address });
  return { label, address, dir, gateway, gatewayName, workerName };
}

async function upload(via: Host, query: string): Promise<Uploaded> {
  const data = Buffer.concat([
    fixture('photo.jpg'),
    Buffer.from(`hosts-${via.label}-${seq++}-${Date.now()}`),
  ]);
  const res = await fetch(`${via.gateway}/upload/h.jpg?${query}`, { method: 'PUT', body: data });
  expect(res.status).toBe(201);
  return { ...((await res.json()) as Omit<Uploaded, 'sha256'>), sha256: sha256(data) };
}

/** Nodes whose disk holds a blob of file `id` (original or variant). */
async function nodesHolding(id: string): Promise<string[]> {
  const holders: string[] = [];
  for (const node of cluster.nodes) {
    const files = await filesUnder(join(node.dataDir, 'blobs'));
    if (files.some((f) => f.includes(`${id}@`) || f.includes(`${id}.`))) holders.push(node.id);
  }
  return holders;
}

/** Log lines of both workers that `match` accepts, each with the host that wrote it. */
const workerLines = (match: (line: Record<string, unknown>) => boolean) =>
  hosts.flatMap((h) =>
    logLines(cluster, h.workerName, match).map((l) => ({ ...l, host: h.label }) as LogLine),
  );

type LogLine = Record<string, unknown> & { host: string };

const queueIdle = (queue: string) => {
  const { ready, unacked } = queueCounts(queue);
  return ready === 0 && unacked === 0;
};

describe('two hosts that share only the network', () => {
  beforeAll(async () => {
    cluster = await startCluster({
      metadata: 'postgres',
      noGateway: true,
      nodeHosts: ['127.0.0.4', '127.0.0.5', '127.0.0.6'],
      env: { ADMIN_TOKEN },
    });
    hosts.push(await startHost('A', '127.0.0.2'), await startHost('B', '127.0.0.3'));
  });
  afterAll(async () => {
    await cluster?.stop();
    await Promise.all(hosts.map((h) => rm(h.dir, { recursive: true, force: true })));
  });
  const showLogs = () => onTestFailed(() => console.log(cluster.logTail(60)));
  const [a, b] = [() => hosts[0]!, () => hosts[1]!];

  it('runs each host on its own address and in its own directory, with no SQLite file', async () => {
    showLogs();
    expect(a().dir).not.toBe(b().dir);
    for (const [one, other] of [
      [a(), b()],
      [b(), a()],
    ])
      expect(relative(one!.dir, other!.dir).startsWith('..')).toBe(true);
    for (const host of hosts) {
      const gateway = new URL(host.gateway);
      expect(gateway.hostname).toBe(host.address);
      expect((await fetch(`${host.gateway}/health`)).ok).toBe(true);
      // Bound to its own address only: the same port on another loopback address is closed.
      await expect(fetch(`http://127.0.0.1:${gateway.port}/health`)).rejects.toThrow();
      const metrics = cluster.proc(host.workerName)!.metricsUrl!;
      expect(new URL(metrics).hostname).toBe(host.address);
      expect((await fetch(metrics)).ok).toBe(true);
      // What each host keeps: its own pid files, and nothing shared.
      expect(existsSync(join(host.dir, 'run', `${host.gatewayName}.pid`))).toBe(true);
      expect(existsSync(join(host.dir, 'run', 'worker.pid'))).toBe(true);
      expect(existsSync(join(host.dir, 'trove.db'))).toBe(false);
      expect(existsSync(join(host.dir, 'cluster.secret'))).toBe(false);
    }
    expect(existsSync(join(cluster.dir, 'trove.db'))).toBe(false);
    for (const node of cluster.nodes) expect(new URL(node.url).hostname).not.toBe('127.0.0.1');
  });

  it('serves exactly max_downloads of 200 concurrent GETs split across both hosts', async () => {
    showLogs();
    const file = await upload(a(), 'max_downloads=5');
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const res = await fetch(`${hosts[i % 2]!.gateway}/download/${file.id}`);
        const data = Buffer.from(await res.arrayBuffer());
        return { status: res.status, left: res.headers.get('x-downloads-left'), data };
      }),
    );
    const served = results.filter((r) => r.status === 200);
    expect(served).toHaveLength(5);
    expect(results.filter((r) => r.status === 410)).toHaveLength(195);
    for (const r of served) expect(sha256(r.data)).toBe(file.sha256);
    expect(served.map((r) => r.left).sort()).toEqual(['0', '1', '2', '3', '4']);
    const [row] = await cluster.query<{ n: number }>(
      `SELECT downloads_used AS n FROM files WHERE id = '${file.id}'`,
    );
    expect(row!.n).toBe(5);
  });

  it('downloads through one host what was uploaded through the other, and honours its deletes', async () => {
    showLogs();
    for (const [up, down] of [
      [a(), b()],
      [b(), a()],
    ]) {
      const file = await upload(up!, 'max_downloads=0');
      const res = await fetch(`${down!.gateway}/download/${file.id}`);
      expect(res.status).toBe(200);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(file.sha256);
    }

    const file = await upload(a(), 'max_downloads=0');
    expect((await fetch(`${a().gateway}/download/${file.id}`)).status).toBe(200);
    const del = await fetch(`${b().gateway}/files/${file.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': file.delete_token },
    });
    expect(del.status).toBe(204);
    const gone = await fetch(`${a().gateway}/download/${file.id}`);
    expect(gone.status).toBe(410);
    expect(((await gone.json()) as any).error.code).toBe('FILE_DELETED');
  });

  it('expires each file exactly once, by one worker or the other', async () => {
    showLogs();
    const files = await Promise.all(
      Array.from({ length: 6 }, (_, i) => upload(hosts[i % 2]!, 'ttl=2&max_downloads=0')),
    );
    const ids = files.map((f) => f.id);
    await waitFor(
      'blobs gone from every node',
      async () => (await Promise.all(ids.map(nodesHolding))).every((n) => n.length === 0),
      30_000,
    );
    await waitFor(
      'no replica rows left',
      async () =>
        (
          await cluster.query<{ n: string }>(
            `SELECT count(*) AS n FROM replicas WHERE file_id IN (${ids.map((id) => `'${id}'`).join()})`,
          )
        )[0]!.n === '0',
    );
    const tombstones = await cluster.query<{ id: string; delete_reason: string }>(
      `SELECT id, delete_reason FROM files WHERE deleted_at IS NOT NULL AND id IN (${ids.map((id) => `'${id}'`).join()})`,
    );
    expect(tombstones.map((t) => t.delete_reason)).toEqual(ids.map(() => 'expired'));

    const expired = workerLines((l) => l.msg === 'file expired').filter((l) =>
      ids.includes(l.id as string),
    );
    for (const id of ids) expect(expired.filter((l) => l.id === id)).toHaveLength(1);
    console.log(
      'tombstones by host:',
      Object.fromEntries(
        hosts.map((h) => [h.label, expired.filter((l) => l.host === h.label).length]),
      ),
    );
  });

  it('repairs each lost replica with one copy, by one worker or the other', async () => {
    showLogs();
    const files = await Promise.all(
      Array.from({ length: 8 }, (_, i) => upload(hosts[i % 2]!, 'max_downloads=0')),
    );
    // Processed first: the image jobs read the originals too, and would find the loss themselves.
    await waitFor(
      'images processed',
      async () =>
        (
          await cluster.query<{ n: string }>(
            `SELECT count(*) AS n FROM files WHERE processing = 'pending' AND id IN (${files.map((f) => `'${f.id}'`).join()})`,
          )
        )[0]!.n === '0',
      30_000,
    );
    const node = cluster.nodes[0]!;
    const blobs = join(node.dataDir, 'blobs');
    const onDisk = await filesUnder(blobs);
    for (const file of files) {
      const path = onDisk.find((p) => p.includes(`${file.id}@`));
      expect(path, `${file.id} on ${node.id}`).toBeDefined();
      await unlink(join(blobs, path!));
    }

    // Both hosts ask for everything at once: two checks of every node, racing on two workers.
    const repairs = await Promise.all(
      hosts.map((h) =>
        fetch(`${h.gateway}/admin/repairs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          body: '{}',
        }),
      ),
    );
    for (const res of repairs) expect(res.status).toBe(202);

    await waitFor(
      `${node.id} refilled`,
      async () => {
        const paths = await filesUnder(blobs);
        for (const file of files) {
          const path = paths.find((p) => p.includes(`${file.id}@`));
          if (!path || sha256(await readFile(join(blobs, path))) !== file.sha256) return false;
        }
        return true;
      },
      30_000,
    );
    const names = topologyNames(cluster.clusterName);
    await waitFor('checks and repairs done', async () => {
      const [row] = await cluster.query<{ n: string }>(
        `SELECT count(*) AS n FROM replicas WHERE state <> 'ok'`,
      );
      return row!.n === '0' && queueIdle(names.nodeCheck) && queueIdle(names.replicaRepair);
    });

    const repaired = workerLines((l) => l.msg === 'replica repaired');
    for (const file of files) {
      const copies = repaired.filter((l) => l.key === file.id);
      const story = () =>
        workerLines((l) => JSON.stringify(l).includes(file.id) || l.msg === 'anti-entropy')
          .map((l) => JSON.stringify(l))
          .join('\n');
      expect(copies, `copies of ${file.id}:\n${story()}`).toHaveLength(1);
      expect(copies[0]!.to).toBe(node.id);
    }
    console.log(
      'repairs by host:',
      Object.fromEntries(
        hosts.map((h) => [h.label, repaired.filter((l) => l.host === h.label).length]),
      ),
    );
    // Nothing else was lost, so nothing else was copied.
    expect(repaired).toHaveLength(files.length);
  });
});

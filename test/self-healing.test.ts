/**
 * Self-healing against real processes: a node whose disk is wiped gets every
 * blob back, a replica with a flipped byte is never served and gets replaced,
 * and gateways share one view of node health through Redis.
 */
import amqp from 'amqplib';
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { rankNodes } from '../shared/placement.js';
import { topologyNames } from '../shared/jobs.js';
import {
  filesUnder,
  fixture,
  METADATA_KINDS,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';

let cluster: Cluster;
let second: string;

describe.each(METADATA_KINDS)('with %s metadata', (metadata) => {
  beforeAll(async () => {
    // The repair sweep is left at its 5-minute default: what heals here is the triggers.
    cluster = await startCluster({
      metadata,
      worker: true,
      env: { OFFLINE_AFTER_FAILURES: '2', ORPHAN_GRACE_SECONDS: '0' },
    });
    second = await cluster.startGateway('gateway2');
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const showLogs = () => onTestFailed(() => console.log(cluster.logTail(60)));

  let seq = 0;
  async function upload(): Promise<{ id: string; sha256: string }> {
    const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`heal-${seq++}-${Date.now()}`)]);
    const res = await fetch(`${cluster.gatewayUrl}/upload/h.jpg?max_downloads=0`, {
      method: 'PUT',
      body: data,
    });
    expect(res.status).toBe(201);
    return { id: ((await res.json()) as { id: string }).id, sha256: sha256(data) };
  }

  /** Blob files on a node's disk whose bytes hash to the sha256 in their name, by key. */
  async function verifiedBlobs(nodeId: string): Promise<Map<string, string>> {
    const node = cluster.nodes.find((n) => n.id === nodeId)!;
    const dir = join(node.dataDir, 'blobs');
    const good = new Map<string, string>();
    for (const path of await filesUnder(dir)) {
      const [key, sha] = path.split('/').at(-1)!.split('@') as [string, string];
      const bytes = await readFile(join(dir, path)).catch(() => undefined);
      if (bytes && createHash('sha256').update(bytes).digest('hex') === sha) good.set(key, sha);
    }
    return good;
  }

  async function cluster_(base = cluster.gatewayUrl): Promise<any> {
    return (await fetch(`${base}/api/cluster`)).json();
  }

  const statusOf = async (base: string, node: string) =>
    ((await cluster_(base)).nodes as any[]).find((n) => n.id === node)?.status;

  describe('self-healing', () => {
    it('restores every blob to a node that comes back with a wiped disk', async () => {
      showLogs();
      const files = await Promise.all(Array.from({ length: 12 }, () => upload()));
      await cluster.kill('node2', 'SIGKILL');
      await waitFor(
        'node2 offline',
        async () => (await statusOf(cluster.gatewayUrl, 'node2')) === 'offline',
      );
      await rm(cluster.nodes[1]!.dataDir, { recursive: true, force: true });
      await cluster.startNode('node2');

      await waitFor(
        'node2 refilled',
        async () => {
          const held = await verifiedBlobs('node2');
          return files.every((f) => held.get(f.id) === f.sha256);
        },
        30_000,
      );
      await waitFor(
        'no under-replicated file',
        async () => (await cluster_()).under_replicated === 0,
      );
      const view = await cluster_();
      expect(view.repairs.done).toBeGreaterThanOrEqual(files.length);
    });

    it('never serves a replica with a flipped byte, and replaces it', async () => {
      showLogs();
      const file = await upload();
      // The replica a download tries first: corrupt it on disk.
      const first = rankNodes(file.id, cluster.nodes)[0]!;
      const dir = join(first.dataDir, 'blobs');
      const path = (await filesUnder(dir)).find((p) => p.includes(`${file.id}@`))!;
      const bytes = await readFile(join(dir, path));
      bytes[bytes.length >> 1]! ^= 0xff;
      await writeFile(join(dir, path), bytes);

      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${cluster.gatewayUrl}/download/${file.id}`);
        expect(res.status).toBe(200);
        expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(file.sha256);
      }
      await waitFor(
        'corrupt replica replaced',
        async () => (await verifiedBlobs(first.id)).get(file.id) === file.sha256,
        30_000,
      );
    });

    it('shares one view of node health between gateways', async () => {
      showLogs();
      await cluster.kill('node3', 'SIGKILL');
      try {
        await waitFor('both see node3 offline', async () => {
          const states = await Promise.all(
            [cluster.gatewayUrl, second].map((g) => statusOf(g, 'node3')),
          );
          return states.every((s) => s === 'offline');
        });
        // One shared record, not two opinions: both report the very same last contact.
        const [a, b] = await Promise.all([cluster_(cluster.gatewayUrl), cluster_(second)]);
        const lastSeen = (v: any) => v.nodes.find((n: any) => n.id === 'node3').last_seen;
        expect(lastSeen(a)).toBe(lastSeen(b));
      } finally {
        await cluster.startNode('node3');
      }
      await waitFor('node3 online for both', async () => {
        const states = await Promise.all(
          [cluster.gatewayUrl, second].map((g) => statusOf(g, 'node3')),
        );
        return states.every((s) => s === 'online');
      });
    });

    it('removes orphan blobs that no file owns, and nothing else', async () => {
      showLogs();
      const kept = await upload();
      const orphan = 'OrphanOrphanOrphan0001';
      const node = cluster.nodes[0]!;
      const put = await fetch(`${node.url}/blobs/${orphan}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${cluster.secret}` },
        body: Buffer.from('left behind by a crash'),
      });
      expect(put.status).toBe(201);
      const conn = await amqp.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
      try {
        const ch = await conn.createChannel();
        ch.sendToQueue(
          topologyNames(cluster.clusterName).nodeCheck,
          Buffer.from(JSON.stringify({ node: node.id })),
          { persistent: true },
        );
        await ch.close();
      } finally {
        await conn.close();
      }
      await waitFor('orphan removed', async () => !(await verifiedBlobs(node.id)).has(orphan));
      for (const n of cluster.nodes)
        expect((await verifiedBlobs(n.id)).get(kept.id)).toBe(kept.sha256);
    });
  });
});

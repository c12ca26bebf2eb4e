/**
 * The layout on several hosts: each storage node in a network namespace of
 * its own (test/netns.ts), so hosts share nothing but the network, changed
 * with the real `npm run cluster` while real clients upload and download.
 *
 * - zones: three hosts in two zones, REPLICATION_FACTOR=2, so a file's two
 *   copies must be in both zones (without zones, a third of the files would
 *   have both in one); a whole zone killed, every file still downloads;
 * - adding a fourth node to 500 files: about a quarter of the replicas move,
 *   no download fails meanwhile, every file ends with three verified copies
 *   where the new layout places them, and no node keeps a blob twice;
 * - draining a node while traffic runs: `remove` is refused until it holds
 *   nothing, then succeeds;
 * - the worker and a node `kill -9`ed in the middle of a rebalance: after
 *   restarts it resumes, nothing lost, nothing left twice.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { placementOf, type LayoutNode } from '../shared/layout.js';
import { NodeClient } from '../shared/node-client.js';
import { ROOT, sha256, startCluster, waitFor, type Cluster } from './harness.js';
import { createNetwork, type Network } from './netns.js';

const run = promisify(execFile);

interface Stored {
  id: string;
  sha256: string;
}

interface ClusterView {
  layout: { version: number; warnings: string[] };
  nodes: (LayoutNode & { status: string; objects: number | null })[];
  rebalance: {
    state: string;
    layout_version: number;
    moved: number;
    removed: number;
    left: number;
    updated_at: string;
  } | null;
}

/** `npm run cluster -- …args` against the cluster's metadata store, as an operator runs it. */
async function layoutCli(cluster: Cluster, ...args: string[]) {
  const env = {
    PATH: process.env.PATH,
    STORAGE_DIR: cluster.dir,
    NODES: cluster.env.NODES,
    LOG_LEVEL: 'warn',
    ...(cluster.databaseUrl && { DATABASE_URL: cluster.databaseUrl }),
    ...(cluster.env.REPLICATION_FACTOR && {
      REPLICATION_FACTOR: cluster.env.REPLICATION_FACTOR,
      WRITE_QUORUM: cluster.env.WRITE_QUORUM!,
    }),
  };
  try {
    const out = await run(process.execPath, [`${ROOT}/dist/scripts/cluster.js`, ...args], {
      cwd: cluster.dir,
      env,
    });
    return { code: 0, ...out };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function view(cluster: Cluster): Promise<ClusterView> {
  return (await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as ClusterView;
}

async function upload(cluster: Cluster, i: number): Promise<Stored> {
  const body = Buffer.from(`file ${i} ${'x'.repeat(200 + (i % 50) * 37)}`);
  const res = await fetch(`${cluster.gatewayUrl}/upload/f${i}.bin?max_downloads=1000`, {
    method: 'PUT',
    body,
  });
  if (res.status !== 201) throw new Error(`upload ${i}: ${res.status} ${await res.text()}`);
  const file = (await res.json()) as Stored;
  expect(file.sha256).toBe(sha256(body));
  return file;
}

async function downloadOk(cluster: Cluster, file: Stored): Promise<boolean> {
  const res = await fetch(`${cluster.gatewayUrl}/download/${file.id}`);
  if (res.status !== 200) return false;
  return sha256(Buffer.from(await res.arrayBuffer())) === file.sha256;
}

/** Waits until a rebalance pass for layout `version` (or newer) ended `done`. */
async function rebalanced(cluster: Cluster, version: number, timeoutMs = 90_000) {
  return waitFor(
    `rebalance of layout ${version} done`,
    async () => {
      const r = (await view(cluster)).rebalance;
      return r && r.layout_version >= version && r.state === 'done' ? r : undefined;
    },
    timeoutMs,
  );
}

/** Replica rows, by file, as the metadata has them. */
async function rowsByFile(cluster: Cluster) {
  const rows = await cluster.query<{ file_id: string; key: string; node: string; state: string }>(
    'SELECT file_id, key, node, state FROM replicas',
  );
  const by = new Map<string, { key: string; node: string; state: string }[]>();
  for (const r of rows) by.set(r.file_id, [...(by.get(r.file_id) ?? []), r]);
  return by;
}

/**
 * Every file has `copies` ok rows, exactly where the layout places it, and
 * every node's disk holds exactly the blobs its rows say, with the right sha256.
 */
async function expectPlaced(cluster: Cluster, files: Stored[], copies: number) {
  const v = await view(cluster);
  const byFile = await rowsByFile(cluster);
  const client = new NodeClient({ secret: cluster.secret, timeoutMs: 5000 });
  try {
    const disks = new Map<string, Map<string, string>>();
    for (const node of v.nodes) {
      const blobs = new Map<string, string>();
      let after: string | undefined;
      do {
        const page = await client.listBlobs(node, after, 5000);
        for (const b of page.blobs) blobs.set(b.key, b.sha256);
        after = page.next ?? undefined;
      } while (after);
      disks.set(node.id, blobs);
    }
    for (const file of files) {
      const rows = byFile.get(file.id) ?? [];
      const want = placementOf(file.id, v.nodes, copies).map((n) => n.id);
      expect(rows.map((r) => r.node).sort(), file.id).toEqual([...want].sort());
      expect(rows.every((r) => r.state === 'ok')).toBe(true);
      for (const node of want) expect(disks.get(node)!.get(file.id)).toBe(file.sha256);
    }
    // Nothing left twice: a blob on a disk is a blob its node has a row for.
    const rowKeys = new Set([...byFile.values()].flat().map((r) => `${r.node}/${r.key}`));
    for (const [node, blobs] of disks)
      for (const key of blobs.keys())
        expect(rowKeys.has(`${node}/${key}`), `${node}/${key}`).toBe(true);
  } finally {
    await client.close();
  }
}

/** Downloads of `files` in a loop until stopped; every failure is kept. */
function traffic(cluster: Cluster, files: Stored[]) {
  const failures: string[] = [];
  let done = 0;
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      const file = files[i % files.length]!;
      try {
        if (!(await downloadOk(cluster, file))) failures.push(file.id);
      } catch (err) {
        failures.push(`${file.id}: ${(err as Error).message}`);
      }
      done++;
    }
  })();
  return {
    failures,
    get done() {
      return done;
    },
    async stop() {
      stop = true;
      await loop;
    },
  };
}

let network: Network;

beforeAll(() => {
  network = createNetwork(4);
});
afterAll(() => {
  network?.destroy();
});

describe('layout on several hosts', () => {
  let cluster: Cluster | undefined;

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' || process.env.DEBUG_LOGS)
      console.log(cluster?.logTail(400));
    await cluster?.stop();
    cluster = undefined;
  });

  async function hostsCluster(nodes: number, env: Record<string, string> = {}) {
    cluster = await startCluster({
      nodes,
      worker: true,
      nodeNamespaces: network.hosts.slice(0, nodes),
      env: { ALLOWED_TYPES: '*/*', LAYOUT_POLL_MS: '500', ...env },
    });
    return cluster;
  }

  it('keeps the copies of every file in both zones, and serves them all with a zone down', async () => {
    const c = await hostsCluster(3, { REPLICATION_FACTOR: '2', WRITE_QUORUM: '2' });
    for (const [node, zone] of [
      ['node1', 'a'],
      ['node2', 'a'],
      ['node3', 'b'],
    ] as const) {
      const out = await layoutCli(c, 'set', node, '--zone', zone);
      expect(out.code, out.stderr).toBe(0);
    }
    await waitFor('gateway on layout 4', async () => (await view(c)).layout.version === 4);
    const files = await Promise.all(Array.from({ length: 40 }, (_, i) => upload(c, i)));
    const byFile = await rowsByFile(c);
    for (const file of files) {
      const nodes = byFile.get(file.id)!.map((r) => r.node);
      expect(nodes, file.id).toContain('node3'); // zone b holds one copy of every file
      expect(nodes.filter((n) => n !== 'node3')).toHaveLength(1); // zone a the other
    }
    // Zone a down: node3 alone serves everything. Then zone b down: zone a does.
    await c.kill('node1');
    await c.kill('node2');
    for (const file of files) expect(await downloadOk(c, file), file.id).toBe(true);
    await c.startNode('node1');
    await c.startNode('node2');
    await c.kill('node3');
    for (const file of files) expect(await downloadOk(c, file), file.id).toBe(true);
  });

  it('moves about a quarter of the replicas to a fourth node, with no download failing', async () => {
    const c = await hostsCluster(3, { REBALANCE_OBJECTS_PER_SECOND: '0' });
    const files: Stored[] = [];
    for (let i = 0; i < 500; i += 25)
      files.push(...(await Promise.all(Array.from({ length: 25 }, (_, j) => upload(c, i + j)))));
    const h4 = network.hosts[3]!;
    const node4 = await c.addNode('node4', { address: h4.address, namespace: h4.namespace });
    const load = traffic(c, files);
    const added = await layoutCli(c, 'add', 'node4', '--url', node4.url, '--zone', 'node4');
    expect(added.code, added.stderr).toBe(0);
    const pass = await rebalanced(c, 2);
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(load.done).toBeGreaterThan(50);
    // 500 files × 3 replicas; a quarter is 375.
    expect(pass.moved).toBeGreaterThan(0.18 * 1500);
    expect(pass.moved).toBeLessThan(0.32 * 1500);
    expect(pass.removed).toBe(pass.moved);
    await expectPlaced(c, files, 3);
  });

  it('empties a drained node while traffic runs; remove is refused until then', async () => {
    // Slow enough that the drain is still under way when `remove` is first tried.
    const c = await hostsCluster(4, { REBALANCE_OBJECTS_PER_SECOND: '5' });
    const files = await Promise.all(Array.from({ length: 60 }, (_, i) => upload(c, i)));
    const load = traffic(c, files);
    const drained = await layoutCli(c, 'drain', 'node4');
    expect(drained.code, drained.stderr).toBe(0);
    const early = await layoutCli(c, 'remove', 'node4');
    expect(early.code).toBe(2);
    expect(early.stderr + early.stdout).toMatch(/replica|objects/);
    // Uploads keep landing meanwhile, on the active nodes only.
    const more = await Promise.all(Array.from({ length: 20 }, (_, i) => upload(c, 100 + i)));
    await rebalanced(c, 2);
    // An upload placed by a gateway still on version 1 asks for another pass: node4 empties then.
    await waitFor(
      'no replica row left on node4',
      async () => {
        const left = await c.query<{ n: number }>(
          "SELECT count(*) AS n FROM replicas WHERE node = 'node4'",
        );
        return Number(left[0]!.n) === 0;
      },
      60_000,
    );
    await load.stop();
    expect(load.failures).toEqual([]);
    await waitFor('node4 reports no objects', async () => {
      const n = (await view(c)).nodes.find((x) => x.id === 'node4');
      return n?.objects === 0;
    });
    const removed = await layoutCli(c, 'remove', 'node4');
    expect(removed.code, removed.stderr).toBe(0);
    await waitFor('node4 gone from the gateway', async () =>
      (await view(c)).nodes.every((n) => n.id !== 'node4'),
    );
    for (const file of [...files, ...more]) expect(await downloadOk(c, file)).toBe(true);
  });

  it('resumes a rebalance cut by kill -9 of the worker and a node: nothing lost, nothing twice', async () => {
    // Slow on purpose, so the kills land in the middle of the pass.
    const c = await hostsCluster(3, { REBALANCE_OBJECTS_PER_SECOND: '15' });
    const files = await Promise.all(Array.from({ length: 120 }, (_, i) => upload(c, i)));
    const h4 = network.hosts[3]!;
    const node4 = await c.addNode('node4', { address: h4.address, namespace: h4.namespace });
    expect((await layoutCli(c, 'add', 'node4', '--url', node4.url)).code).toBe(0);
    await waitFor('rebalance under way', async () => {
      const r = (await view(c)).rebalance;
      return r?.layout_version === 2 && r.moved >= 15;
    });
    await c.kill('worker', 'SIGKILL');
    await c.kill('node2', 'SIGKILL');
    const during = (await view(c)).rebalance!;
    expect(during.state).toBe('running');
    for (const file of files) expect(await downloadOk(c, file), file.id).toBe(true);
    await c.startWorker('worker', { REBALANCE_OBJECTS_PER_SECOND: '0' });
    await c.startNode('node2');
    const pass = await rebalanced(c, 2);
    expect(pass.moved).toBeGreaterThan(0);
    await waitFor('no repair left', async () => {
      const rows = await c.query<{ n: number }>(
        "SELECT count(*) AS n FROM replicas WHERE state <> 'ok'",
      );
      return Number(rows[0]!.n) === 0;
    });
    await expectPlaced(c, files, 3);
    for (const file of files) expect(await downloadOk(c, file), file.id).toBe(true);
  });
});

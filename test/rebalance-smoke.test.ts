import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it, onTestFailed } from 'vitest';
import { startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({
    nodes: 4,
    worker: true,
    env: { LAYOUT_POLL_MS: '500', ALLOWED_TYPES: '*/*' },
  });
});
afterAll(async () => {
  await cluster?.stop();
});

it('drains node4', async () => {
  onTestFailed(() => console.log(cluster.logTail(60)));
  const ids: string[] = [];
  for (let i = 0; i < 60; i++) {
    const res = await fetch(`${cluster.gatewayUrl}/upload/f${i}.bin`, {
      method: 'PUT',
      body: Buffer.from(`file ${i} `.repeat(100)),
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (res.status !== 201) throw new Error(await res.text());
    ids.push(((await res.json()) as { id: string }).id);
  }
  const db = new Database(cluster.dbPath);
  const row = db.prepare('SELECT * FROM layouts ORDER BY version DESC LIMIT 1').get() as {
    version: number;
    nodes: string;
  };
  const nodes = JSON.parse(row.nodes) as { id: string; role: string }[];
  for (const n of nodes) if (n.id === 'node4') n.role = 'draining';
  db.prepare('INSERT INTO layouts (version, created_at, nodes, note) VALUES (?, ?, ?, ?)').run(
    row.version + 1,
    Date.now(),
    JSON.stringify(nodes),
    'drain node4',
  );
  db.close();
  await waitFor(
    'rebalance done',
    async () => {
      const c = (await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as {
        rebalance: { state: string; layout_version: number } | null;
      };
      console.log(JSON.stringify(c.rebalance));
      return c.rebalance?.layout_version === row.version + 1 && c.rebalance.state === 'done';
    },
    60_000,
  );
  const left = await cluster.query<{ n: number }>(
    "SELECT count(*) AS n FROM replicas WHERE node = 'node4'",
  );
  expect(left[0]!.n).toBe(0);
  for (const id of ids) {
    const res = await fetch(`${cluster.gatewayUrl}/download/${id}`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
  const c = await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json();
  console.log(JSON.stringify(c, null, 1));
});

/**
 * A repair whose target node is down when it runs is tried again seconds
 * later (put off through the delay ladder, worker/job-consumer.ts), not left
 * for the node's return to be noticed: a node down for a few seconds may come
 * back before any gateway sees it offline, and then no anti-entropy pass
 * brings the copy back before the repair sweep (every 5 minutes). Here no
 * gateway runs when the node comes back. Found by the chaos drill (seed 10).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { logLines, startCluster, waitFor, type Cluster } from './harness.js';

describe('a repair whose target node is down', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ worker: true, env: { ALLOWED_TYPES: '*/*' } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('is tried again and done once the node is back, though no gateway saw it return', async () => {
    onTestFailed(() => console.log(cluster.logTail(40)));
    await cluster.kill('node3', 'SIGKILL');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${cluster.gatewayUrl}/upload/retry-${i}.bin`, {
        method: 'PUT',
        body: randomBytes(10_000 + i),
      });
      expect(res.status).toBe(201);
      const file = (await res.json()) as {
        id: string;
        replicas: { node: string; state: string }[];
      };
      expect(file.replicas.find((r) => r.node === 'node3')?.state).toBe('missing');
      ids.push(file.id);
    }
    // The repairs run while node3 is down (each job's quick tries take about 2 s)…
    await waitFor('the repairs to meet node3 down', async () =>
      ids.every((id) =>
        logLines(cluster, 'worker').some(
          (l) => JSON.stringify(l.job ?? '').includes(id) || l.key === id,
        ),
      ),
    );
    await new Promise((r) => setTimeout(r, 2500));
    // …and nothing is left to notice its return.
    await cluster.kill('gateway', 'SIGKILL');
    await cluster.startNode('node3');
    await waitFor(
      'the copies on node3',
      async () => {
        const rows = await cluster.query<{ state: string }>(
          "SELECT state FROM replicas WHERE node = 'node3' AND key = file_id",
        );
        return rows.length === ids.length && rows.every((r) => r.state === 'ok');
      },
      30_000,
    );
  });
});

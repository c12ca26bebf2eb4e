/**
 * Node health as docs/api.md promises it: a node that stops answering is
 * `suspect` after one failed probe, `offline` after OFFLINE_AFTER_FAILURES
 * (3) in a row, and `online` again at the first probe it answers, which comes
 * fast for an offline node (probed every 250 ms besides the schedule). The
 * node is really stopped (SIGSTOP), and the steps are read from the shared
 * record every gateway reads (Redis) and from GET /api/cluster.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startCluster, waitFor, type Cluster } from './harness.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

let cluster: Cluster;
let redis: Redis;
beforeAll(async () => {
  // The documented defaults: probes every 2 s, offline after 3 failures.
  cluster = await startCluster({ env: { PROBE_SCHEDULE: '*/2 * * * * *' } });
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

interface Step {
  /** node2's shared record: status and consecutive failures. */
  status: string;
  failures: number;
  /** What GET /api/cluster said of node2 right after. */
  api: string;
  at: number;
}

describe('node health', () => {
  it('goes online → suspect → offline after 3 failed probes, and back at the first good one', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const key = `${cluster.clusterName}:node:node2`;
    const steps: Step[] = [];
    let watching = true;
    // Every distinct state, polled far faster than the probes change it.
    const watch = (async () => {
      while (watching) {
        const record = await redis.hgetall(key);
        const view = (await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as {
          nodes: { id: string; status: string }[];
        };
        const step = {
          status: record.status ?? 'none',
          failures: Number(record.failures ?? 0),
          api: view.nodes.find((n) => n.id === 'node2')!.status,
          at: Date.now(),
        };
        const last = steps.at(-1);
        if (
          !last ||
          last.status !== step.status ||
          last.failures !== step.failures ||
          last.api !== step.api
        )
          steps.push(step);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const current = () => steps.at(-1);
    const node2 = cluster.proc('node2')!.proc;
    const failures = () => current()?.failures ?? 0;
    try {
      await waitFor('node2 online', async () => current()?.api === 'online');
      node2.kill('SIGSTOP'); // connections are accepted, nothing answers: probes time out
      await waitFor('node2 offline', async () => current()?.api === 'offline', 30_000);
      // Three more failures while offline, to see how often an offline node is probed.
      await waitFor('three more failed probes', async () => failures() >= 6, 30_000);
    } finally {
      node2.kill('SIGCONT');
    }
    // The gateway's own view and the shared record are written one after the
    // other; wait for both so the last step recorded is the whole recovery.
    await waitFor(
      'node2 online again',
      async () => current()?.api === 'online' && current()?.status === 'online',
      30_000,
    );
    watching = false;
    await watch;

    // The shared record, step by step: one failure makes it suspect, the third offline.
    const records = steps
      .map((s): [string, number] => [s.status, s.failures])
      .filter(
        ([status, failures], i, all) => status !== all[i - 1]?.[0] || failures !== all[i - 1]?.[1],
      );
    const firstOffline = records.findIndex(([status]) => status === 'offline');
    expect(records.slice(0, firstOffline + 1)).toEqual([
      ['online', 0],
      ['suspect', 1],
      ['suspect', 2],
      ['offline', 3],
    ]);
    // Probes of the offline node went on failing until it answered; the first answer reset it.
    for (const [status, failures] of records.slice(firstOffline, -1))
      expect([status, failures >= 3]).toEqual(['offline', true]);
    expect(records.at(-1)).toEqual(['online', 0]);

    // GET /api/cluster shows the same states, in the same order.
    const shown = steps.map((s) => s.api).filter((api, i, all) => api !== all[i - 1]);
    expect(shown).toEqual(['online', 'suspect', 'offline', 'online']);

    // An offline node is probed every 250 ms besides the schedule (each probe
    // here waits out its 1 s timeout), so three failures came faster than
    // two scheduled probes apart would allow.
    const when = (status: string, n: number) =>
      steps.find((s) => s.status === status && s.failures >= n)!.at;
    const scheduled = when('suspect', 2) - when('suspect', 1);
    const offlineThree = when('offline', 6) - when('offline', 3);
    expect(offlineThree, `one scheduled interval: ${scheduled} ms`).toBeLessThan(2 * scheduled);
  });
});

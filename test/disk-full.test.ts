/**
 * A storage node whose disk is full, for real: its data directory is a small
 * tmpfs of its own (test/node-disk.ts, root only) filled to the last byte.
 * It refuses writes with 507 INSUFFICIENT_STORAGE; uploads go on with the
 * other nodes' copies; once it has room again, the copy it missed is
 * repaired within seconds, not at the next repair sweep (five minutes by
 * default, as here): the repair job that met the full disk was put off and
 * tried again, not dead-lettered. The chaos drill found that one.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { randomBytes } from 'node:crypto';
import { logLines, startCluster, waitFor, type Cluster } from './harness.js';
import { fillDisk, freeDisk, mountDisk, unmountDisk } from './node-disk.js';

describe('a node with a full disk', () => {
  let cluster: Cluster;
  const full = () => cluster.nodes.find((n) => n.id === 'node3')!;

  beforeAll(async () => {
    cluster = await startCluster({
      worker: true,
      prepareNode: async (node) => {
        if (node.id === 'node3') mountDisk(node.dataDir, 16);
      },
      // Not images: no image job reads or writes the files, only the repair touches node3.
      env: { ALLOWED_TYPES: '*/*' },
    });
  });
  afterAll(async () => {
    if (!cluster) return;
    await cluster.kill('node3', 'SIGKILL');
    unmountDisk(full().dataDir);
    await cluster.stop();
  });

  it('refuses writes with 507, uploads keep two copies, and the third is repaired once it has room', async () => {
    onTestFailed(() => console.log(cluster.logTail(40)));
    await fillDisk(full().dataDir);
    const files: { id: string; replicas: { node: string; state: string }[] }[] = [];
    for (let i = 0; i < 4; i++) {
      const body = randomBytes(20_000 + i);
      const res = await fetch(`${cluster.gatewayUrl}/upload/full-${i}.bin`, {
        method: 'PUT',
        body,
      });
      expect(res.status).toBe(201);
      files.push((await res.json()) as (typeof files)[number]);
    }
    for (const f of files) {
      expect(f.replicas.find((r) => r.node === 'node3')?.state).toBe('missing');
      expect(f.replicas.filter((r) => r.state === 'ok')).toHaveLength(2);
    }
    // The node said why, in its status and its log.
    const refused = logLines(cluster, 'node3', (l) => l.msg === 'request' && l.status === 507);
    expect(refused.length).toBeGreaterThan(0);
    // Every try of the repairs meets the full disk (4 tries in about 2 s) before it has room again.
    await waitFor('the repairs to meet the full disk', async () => {
      const failed = logLines(
        cluster,
        'worker',
        (l) => l.msg === 'job failed' && l.attempt === 4 && String(l.queue).endsWith('.repair'),
      );
      return failed.length >= files.length;
    });
    await freeDisk(full().dataDir);
    await waitFor(
      'every copy on node3 again',
      async () => {
        const rows = await cluster.query<{ state: string }>(
          "SELECT state FROM replicas WHERE node = 'node3' AND key = file_id",
        );
        return rows.length === files.length && rows.every((r) => r.state === 'ok');
      },
      40_000,
    );
    // They were put off and tried again, never dead-lettered.
    expect(
      logLines(cluster, 'worker', (l) => l.msg === 'job failed for now, tried again later').length,
    ).toBeGreaterThanOrEqual(files.length);
    expect(
      logLines(cluster, 'worker', (l) => l.msg === 'job failed for good, dead-lettered'),
    ).toEqual([]);
    for (const f of files) {
      const res = await fetch(`${cluster.gatewayUrl}/files/${f.id}`);
      const view = (await res.json()) as { replicas: { state: string }[] };
      expect(view.replicas.map((r) => r.state)).toEqual(['ok', 'ok', 'ok']);
    }
  });
});

/**
 * Repair racing a deletion: a copy slower than the deletion's grace must not
 * land a blob that nothing tracks any more.
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { filesUnder, jpegStream, startCluster, waitFor, type Cluster } from './harness.js';

const ADMIN = 'admin-token-for-repair-races';
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({
    worker: true,
    // A 6 MB copy takes about 6 s at this rate; a deletion's grace is 1 s.
    env: { ADMIN_TOKEN: ADMIN, REPAIR_BYTES_PER_SECOND: '1MB', DELETE_GRACE_SECONDS: '1' },
  });
});
afterAll(async () => {
  await cluster?.stop();
});

const workerLog = () => readFile(cluster.proc('worker')!.logFile, 'utf8');
const landed = (log: string) =>
  log.includes('copy was removed') || log.includes('"replica repaired"');

describe('repair racing a deletion', () => {
  it('removes the copy it made of a file deleted while the copy travelled', async () => {
    onTestFailed(() => console.log(cluster.logTail(40)));
    const { stream } = jpegStream(6 * 1024 * 1024);
    const res = await fetch(`${cluster.gatewayUrl}/upload/big.jpg?max_downloads=0`, {
      method: 'PUT',
      body: stream as unknown as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(201);
    const file = (await res.json()) as { id: string; delete_token: string };

    // One replica disappears from its disk; an admin check finds it and queues its repair.
    const target = cluster.nodes[2]!;
    const blobsOn = async () =>
      (await filesUnder(join(target.dataDir, 'blobs'))).filter((p) => p.includes(`${file.id}@`));
    const [path] = await blobsOn();
    await rm(join(target.dataDir, 'blobs', path!));
    const check = await fetch(`${cluster.gatewayUrl}/admin/repairs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ file_id: file.id }),
    });
    expect(check.status).toBe(202);

    // The copy is under way: the target is writing it to a temp file.
    await waitFor('the repair copy to start on the target', async () =>
      (await readdir(join(target.dataDir, 'tmp'))).some((n) => n.startsWith(`${file.id}.`)),
    );
    const del = await fetch(`${cluster.gatewayUrl}/files/${file.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': file.delete_token },
    });
    expect(del.status).toBe(204);
    // The deletion passed every node (the target too, while its copy was still a temp file)...
    await waitFor('the deletion to remove the blobs', async () =>
      (await workerLog())
        .split('\n')
        .some((l) => l.includes('file blobs deleted') && l.includes(file.id)),
    );
    // ...before the copy landed.
    expect(landed(await workerLog())).toBe(false);
    await waitFor('the repair copy to land', async () => landed(await workerLog()), 30_000);
    expect(await blobsOn()).toEqual([]);
    expect(await workerLog()).toContain('copy was removed');
  });
});

/**
 * Scrub against a real cluster: a byte flipped on one node's disk is found by
 * that node's background scrub (no read needed), the blob is quarantined and
 * reported in /health, and the file still downloads intact from the others.
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { rankNodes } from '../shared/placement.js';
import { filesUnder, fixture, sha256, startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ env: { SCRUB_INTERVAL_SECONDS: '1' } });
});
afterAll(async () => {
  await cluster?.stop();
});

async function health(url: string): Promise<any> {
  const res = await fetch(`${url}/health`);
  expect(res.status).toBe(200);
  return res.json();
}

describe('scrub', () => {
  it('quarantines a blob corrupted on disk, and the file still downloads', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const jpeg = fixture('photo.jpg');
    const up = await fetch(`${cluster.gatewayUrl}/upload/x.jpg?max_downloads=0`, {
      method: 'PUT',
      body: jpeg,
    });
    expect(up.status).toBe(201);
    const { id } = (await up.json()) as { id: string };

    // Corrupt the copy the gateway reads first, so the download has to go around it.
    const node = rankNodes(id, cluster.nodes)[0]!;
    const blobsDir = join(node.dataDir, 'blobs');
    // `${id}@`: the original only, not the variants the worker makes (`<id>.thumb@…`).
    const [file] = (await filesUnder(blobsDir)).filter((f) =>
      f.split('/').pop()!.startsWith(`${id}@`),
    );
    expect(file, `${id} on ${node.id}`).toBeDefined();
    const before = (await health(node.url)).scrub;
    expect(before).toMatchObject({ corrupt_found: 0 });

    const handle = await open(join(blobsDir, file!), 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 5000);
    byte[0]! ^= 0xff;
    await handle.write(byte, 0, 1, 5000);
    await handle.close();

    const scrub = await waitFor(`${node.id} scrub to find the corrupt blob`, async () => {
      const { scrub } = await health(node.url);
      const onDisk = (await filesUnder(blobsDir)).some((f) =>
        f.split('/').pop()!.startsWith(`${id}@`),
      );
      return scrub.corrupt_found === 1 && !onDisk && scrub;
    });
    expect(scrub).toMatchObject({
      last_started: expect.any(String),
      last_finished: expect.any(String),
      blobs_checked: expect.any(Number),
      bytes_checked: expect.any(Number),
    });
    const quarantined = await filesUnder(join(node.dataDir, 'quarantine'));
    expect(quarantined.some((f) => f.startsWith(`${id}@${sha256(jpeg)}.`))).toBe(true);
    // Nothing was read through the API: the scrub found it, and said so.
    expect(cluster.errorLines(node.id)).toEqual([]);

    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${cluster.gatewayUrl}/download/${id}`);
      expect(res.status).toBe(200);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(jpeg));
    }
    // The other nodes' scrubs pass over their good copies without a find.
    for (const other of cluster.nodes.filter((n) => n.id !== node.id)) {
      await waitFor(`${other.id} scrub pass`, async () => {
        const { scrub } = await health(other.url);
        return scrub.last_finished !== null && scrub.blobs_checked >= 1;
      });
      expect((await health(other.url)).scrub.corrupt_found).toBe(0);
    }
  });
});

describe('scrub and repair', () => {
  let healing: Cluster;
  beforeAll(async () => {
    healing = await startCluster({ worker: true, env: { SCRUB_INTERVAL_SECONDS: '1' } });
  });
  afterAll(async () => {
    await healing?.stop();
  });

  it('replaces a replica its node quarantined, without any read', async () => {
    onTestFailed(() => console.log(healing.logTail()));
    const jpeg = fixture('photo.jpg');
    const up = await fetch(`${healing.gatewayUrl}/upload/y.jpg?max_downloads=0`, {
      method: 'PUT',
      body: jpeg,
    });
    const { id } = (await up.json()) as { id: string };
    // The worker reads the original for each variant (and would quarantine the bad copy on
    // that read): let it finish first, so the scrub is the only reader left.
    await waitFor('processed', async () => {
      const file = (await (await fetch(`${healing.gatewayUrl}/files/${id}`)).json()) as {
        processing: { state: string };
      };
      return file.processing.state !== 'pending';
    });
    const node = healing.nodes[2]!;
    const blobsDir = join(node.dataDir, 'blobs');
    const onDisk = async () =>
      (await filesUnder(blobsDir)).find((f) => f.split('/').pop()!.startsWith(`${id}@`));
    const file = (await onDisk())!;
    const handle = await open(join(blobsDir, file), 'r+');
    await handle.write(Buffer.from([0x00, 0x11, 0x22]), 0, 3, 100);
    await handle.close();

    await waitFor('quarantined', async () => (await health(node.url)).scrub.corrupt_found === 1);
    // The gateway's probe sees the find, queues anti-entropy, and the worker copies it back.
    await waitFor(
      'restored',
      async () => {
        const path = await onDisk();
        if (!path) return false;
        return sha256(await readFile(join(blobsDir, path))) === sha256(jpeg);
      },
      30_000,
    );
  });
});

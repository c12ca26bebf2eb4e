/**
 * The promise of the whole design, under load: downloads and uploads at
 * concurrency 8 keep going while a storage node is killed with `kill -9`,
 * with zero failed requests and zero wrong bytes.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { fixture, sha256, startCluster, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ worker: true });
});
afterAll(async () => {
  await cluster?.stop();
});

let seq = 0;
const image = () =>
  Buffer.concat([fixture('photo.jpg'), Buffer.from(`load-${seq++}-${Date.now()}`)]);

async function upload(data: Buffer): Promise<string> {
  const res = await fetch(`${cluster.gatewayUrl}/upload/l.jpg?max_downloads=0`, {
    method: 'PUT',
    body: data,
  });
  const body = (await res.json()) as any;
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(body)}`);
  return body.id;
}

describe('kill -9 under load', () => {
  it('fails no request and serves no wrong byte while a node dies', async () => {
    onTestFailed(() => console.log(cluster.logTail(60)));
    const files: { id: string; sha256: string }[] = [];
    for (let i = 0; i < 24; i++) {
      const data = image();
      files.push({ id: await upload(data), sha256: sha256(data) });
    }

    const failures: string[] = [];
    let requests = 0;
    let running = true;
    const client = async (n: number) => {
      for (let i = 0; running; i++) {
        requests++;
        try {
          if ((i + n) % 3 === 0) {
            const data = image();
            const id = await upload(data);
            files.push({ id, sha256: sha256(data) });
          } else {
            const f = files[(i * 7 + n) % files.length]!;
            const res = await fetch(`${cluster.gatewayUrl}/download/${f.id}`);
            const got = sha256(Buffer.from(await res.arrayBuffer()));
            if (res.status !== 200) failures.push(`download ${f.id}: ${res.status}`);
            else if (got !== f.sha256) failures.push(`download ${f.id}: wrong bytes`);
          }
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const clients = Array.from({ length: 8 }, (_, n) => client(n));
    await new Promise((r) => setTimeout(r, 1000));
    await cluster.kill('node1', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 3000));
    running = false;
    await Promise.all(clients);

    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(50);
    // Everything uploaded, before or during the kill, is still there.
    for (const f of files) {
      const res = await fetch(`${cluster.gatewayUrl}/download/${f.id}`);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(f.sha256);
    }
  });
});

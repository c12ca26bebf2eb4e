/**
 * A resumable upload survives the network and the gateway: tus-js-client
 * sends 200 MB through nginx to two gateways; at 30 % its connection is cut
 * (a TCP proxy in front of nginx drops every socket), at 60 % the gateway
 * receiving it is `kill -9`ed. It resumes (HEAD, then PATCH from the offset)
 * on whichever gateway nginx picks, and completes: the right sha256, three
 * replicas, no part left behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import * as tus from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { findNginx, startNginx, type RunningNginx } from '../scripts/nginx-lb.js';
import { fixture, freePort, partsOnNodes, startCluster, waitFor, type Cluster } from './harness.js';
import { skipWithout } from './required-tools.js';

const binary = findNginx();
const noNginx = skipWithout(
  'nginx',
  binary,
  'apt-get install -y nginx-light, or set NGINX to its path',
);

const SIZE = 200 * 1024 * 1024;
const CHUNK = 16 * 1024 * 1024;

/** A TCP proxy to `target` whose connections can all be cut at once, as a dropped network does. */
async function cuttableProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(target);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut: () => {
      for (const s of sockets) s.resetAndDestroy();
    },
    // A net.Server's close waits for its open sockets; a keep-alive one would hold it for a minute.
    close: () => {
      const closed = new Promise<void>((done) => server.close(() => done()));
      for (const s of sockets) s.destroy();
      return closed;
    },
  };
}

/** Bytes a process has read from sockets and files so far (/proc/<pid>/io). */
async function bytesRead(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8');
  return Number(/rchar: (\d+)/.exec(io)![1]);
}

describe.skipIf(noNginx)(
  'a resumable upload through nginx, cut off and with its gateway killed',
  () => {
    let cluster: Cluster;
    let nginx: RunningNginx;
    let proxy: Awaited<ReturnType<typeof cuttableProxy>>;
    let path: string;
    let digest: string;

    beforeAll(async () => {
      // A worker sweeps what a killed gateway could not remove (SWEEP_SCHEDULE: every 2 s here).
      cluster = await startCluster({
        worker: true,
        env: { TRUST_PROXY: 'true', SWEEP_SCHEDULE: '*/2 * * * * *' },
      });
      const second = await cluster.startGateway('gateway2');
      const listen = `127.0.0.1:${await freePort()}`;
      nginx = await startNginx(binary!, `${cluster.dir}/nginx`, {
        listen,
        gateways: [cluster.gatewayUrl, second].map((u) => new URL(u).host),
      });
      const [host, port] = listen.split(':');
      proxy = await cuttableProxy({ host: host!, port: Number(port) });
      // The file: a JPEG's head, then noise; hashed as it is written, never held whole.
      path = join(cluster.dir, 'big.jpg');
      const hash = createHash('sha256');
      const out = createWriteStream(path);
      const head = fixture('photo.jpg');
      for (let written = 0; written < SIZE;) {
        const chunk = written === 0 ? head : randomBytes(Math.min(4 * 1024 * 1024, SIZE - written));
        hash.update(chunk);
        written += chunk.length;
        if (!out.write(chunk)) await once(out, 'drain');
      }
      out.end();
      await once(out, 'finish');
      digest = hash.digest('hex');
    }, 180_000);
    afterAll(async () => {
      await proxy?.close();
      await nginx?.stop();
      await cluster?.stop();
    }, 120_000);

    it('resumes and completes: right sha256, three replicas, no part left', async () => {
      const gateways = [cluster.gateway!, cluster.proc('gateway2')!];
      const events: string[] = [];
      onTestFailed(() => console.log(events.join('\n'), cluster.logTail(60)));
      let cut = false;
      let killed: string | undefined;
      let killing = false;

      /** Kills -9 the gateway receiving the upload now: the one reading megabytes in a short window. */
      async function killServingGateway() {
        for (;;) {
          const before = await Promise.all(gateways.map((g) => bytesRead(g.proc.pid!)));
          await new Promise((r) => setTimeout(r, 50));
          const read = (await Promise.all(gateways.map((g) => bytesRead(g.proc.pid!)))).map(
            (n, i) => n - before[i]!,
          );
          const serving = read.findIndex((n, i) => n > 512 * 1024 && read[1 - i]! < 64 * 1024);
          if (serving < 0) continue;
          killed = gateways[serving]!.name;
          events.push(`kill -9 ${killed}`);
          await cluster.kill(killed, 'SIGKILL');
          return;
        }
      }

      const upload = await new Promise<tus.Upload>((resolve, reject) => {
        const u = new tus.Upload(createReadStream(path), {
          endpoint: `${proxy.url}/tus/`,
          uploadSize: SIZE,
          chunkSize: CHUNK,
          metadata: { filename: 'big.jpg', max_downloads: '2' },
          retryDelays: [0, 500, 1000, 2000, 3000, 5000, 5000, 5000, 5000, 5000],
          onProgress: (sent) => {
            if (!cut && sent >= SIZE * 0.3) {
              cut = true;
              events.push(`cut at ${sent}`);
              proxy.cut();
            } else if (cut && !killing && sent >= SIZE * 0.6) {
              killing = true;
              void killServingGateway();
            }
          },
          onShouldRetry: (err, attempt) => {
            events.push(`retry ${attempt}: ${(err as Error).message.slice(0, 80)}`);
            return true;
          },
          onSuccess: () => resolve(u),
          onError: reject,
        });
        u.start();
      });
      expect(cut).toBe(true);
      expect(killed).toBeDefined();
      // Both interrupted a request the client had to try again.
      const kill = events.findIndex((e) => e.startsWith('kill'));
      expect(events.slice(1, kill).some((e) => e.startsWith('retry'))).toBe(true);
      expect(events.slice(kill).some((e) => e.startsWith('retry'))).toBe(true);

      // The file object, asked of the gateway still up, through nginx.
      const res = await fetch(upload.url!.replace(proxy.url, nginx.url));
      expect(res.status).toBe(200);
      const file = (await res.json()) as {
        id: string;
        size: number;
        sha256: string;
        replicas: { node: string; state: string }[];
      };
      expect(file.size).toBe(SIZE);
      expect(file.sha256).toBe(digest);
      expect(file.replicas.filter((r) => r.state === 'ok')).toHaveLength(3);
      // What the nodes serve is those bytes.
      const download = await fetch(`${nginx.url}/download/${file.id}`);
      const hash = createHash('sha256');
      for await (const chunk of download.body!) hash.update(chunk);
      expect(hash.digest('hex')).toBe(digest);
      // No part left: not on any node, not in the metadata (what the killed gateway left, the sweep removes).
      const partsLeft = async () => {
        return [
          ...(await partsOnNodes(cluster, file.id)),
          ...(await cluster.query<{ key: string }>('SELECT key FROM upload_parts')).map(
            (r) => r.key,
          ),
        ];
      };
      await waitFor('no part left', async () => (await partsLeft()).length === 0, 20_000).catch(
        () => undefined,
      );
      expect(await partsLeft()).toEqual([]);
    }, 240_000);
  },
);

/**
 * `npm run start:lb`: two gateways behind a local nginx. They trust
 * X-Forwarded-For, so only nginx may reach them: they must listen on loopback
 * alone, never on an address the LAN reaches.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { deleteTopology } from '../shared/amqp.js';
import { findNginx } from '../scripts/nginx-lb.js';
import { ROOT, freePort, waitFor } from './harness.js';
import { skipWithout } from './required-tools.js';

const nginx = findNginx();
const noNginx = skipWithout('nginx', nginx, 'apt-get install nginx-light, or set NGINX');

let dir: string;
let start: ChildProcess | undefined;
let output = '';
let port: number;
const clusterName = `trove-test-lb-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  if (noNginx) return;
  dir = mkdtempSync(join(tmpdir(), 'trove-lb-'));
  port = await freePort();
  const nodes = await Promise.all(
    [1, 2, 3].map(async (i) => `node${i}=http://127.0.0.1:${await freePort()}`),
  );
  start = spawn(process.execPath, [join(ROOT, 'dist/scripts/start.js'), '--lb'], {
    cwd: ROOT,
    env: {
      ...process.env,
      STORAGE_DIR: dir,
      PORT: String(port),
      HOST: '0.0.0.0',
      NODES: nodes.join(','),
      CLUSTER_NAME: clusterName,
      WORKER_METRICS_PORT: String(await freePort()),
      LOG_FORMAT: 'json',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  start.stdout!.on('data', (d: Buffer) => (output += d));
  start.stderr!.on('data', (d: Buffer) => (output += d));
  await waitFor('the balanced cluster', async () => output.includes('behind nginx'), 60_000);
});
afterAll(async () => {
  if (start && start.exitCode === null) {
    start.kill('SIGINT');
    await new Promise((r) => start!.once('exit', r));
  }
  await deleteTopology('amqp://guest:guest@127.0.0.1:5672', clusterName).catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Local addresses listening on `port` (TCP, IPv4 and IPv6), from /proc/net. */
function listening(port: number): string[] {
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== '0A' || !local) continue; // 0A: LISTEN
      const [addr, hexPort] = local.split(':') as [string, string];
      if (parseInt(hexPort, 16) === port) found.push(addr.length === 8 ? ipv4(addr) : addr);
    }
  }
  return found;
}
const ipv4 = (hex: string) =>
  [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.');

const reachable = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host, port, timeout: 2000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });

describe('npm run start:lb', () => {
  it.skipIf(noNginx)('binds the gateways that trust X-Forwarded-For to loopback only', async () => {
    onTestFailed(() => console.log(output.slice(-4000)));
    const gateways = [port + 1, port + 2];
    for (const p of gateways) expect(listening(p), `port ${p}`).toEqual(['127.0.0.1']);
    // nginx, the one public entry, still serves on every address.
    expect(listening(port)).toContain('0.0.0.0');
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);

    const lan = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (lan) {
      expect(await reachable(lan, port)).toBe(true);
      for (const p of gateways) expect(await reachable(lan, p), `${lan}:${p}`).toBe(false);
    }
    // Bound to loopback, they have no reason to warn about TRUST_PROXY.
    expect(output).not.toContain('TRUST_PROXY is on while');
  });
});

describe('a gateway trusting X-Forwarded-For on a LAN address', () => {
  it('warns at start-up, naming TRUST_PROXY and the address', async () => {
    const home = mkdtempSync(join(tmpdir(), 'trove-trust-'));
    const gateway = spawn(process.execPath, [join(ROOT, 'dist/gateway/main.js')], {
      cwd: ROOT,
      env: {
        ...process.env,
        STORAGE_DIR: home,
        HOST: '0.0.0.0',
        PORT: String(await freePort()),
        TRUST_PROXY: 'true',
        REPLICATION_FACTOR: '1',
        WRITE_QUORUM: '1',
        NODES: `node1=http://127.0.0.1:${await freePort()}`,
        CLUSTER_NAME: clusterName,
        LOG_FORMAT: 'json',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    gateway.stdout!.on('data', (d: Buffer) => (log += d));
    gateway.stderr!.on('data', (d: Buffer) => (log += d));
    try {
      await waitFor(
        'the gateway to listen',
        async () => {
          if (gateway.exitCode !== null) throw new Error(`gateway exited: ${log}`);
          return log.includes('gateway listening');
        },
        30_000,
      );
      const warning = log.split('\n').find((l) => l.includes('TRUST_PROXY is on while'));
      expect(warning).toBeDefined();
      expect(JSON.parse(warning!)).toMatchObject({ level: 40, host: '0.0.0.0' });
    } finally {
      gateway.kill('SIGKILL');
      rmSync(home, { recursive: true, force: true });
    }
  });
});

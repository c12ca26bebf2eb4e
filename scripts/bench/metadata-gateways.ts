/**
 * The two gateways of the metadata suite: started by the bench beside the
 * running cluster's own, with the same NODES, Redis, RabbitMQ and
 * STORAGE_DIR (so the same storage nodes and cluster secret), and differing
 * only in their metadata store: a fresh SQLite file in the bench's scratch
 * space, or a fresh PostgreSQL database created on --postgres for the run and
 * dropped after it. Neither shares metadata with the cluster's gateway or
 * worker, so the worker never touches their files; their blobs become
 * orphans once the run ends, which the worker's anti-entropy removes after
 * ORPHAN_GRACE_SECONDS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { request } from 'undici';
import { gatewayEntry } from '../cluster-control.js';

export type MetadataMode = 'sqlite' | 'postgres';

export interface BenchGateway {
  mode: MetadataMode;
  origin: string;
  pid: number;
  log: string;
  /** PostgreSQL backends serving this gateway's pool (none for SQLite); refreshed by `refresh()`. */
  backends: number[];
}

export interface BenchGateways {
  sqlite: BenchGateway;
  postgres: BenchGateway;
  /** Re-reads which PostgreSQL backends serve the bench database (the pool opens them lazily). */
  refresh(): Promise<void>;
  /** Stops both gateways and drops the database; safe to call twice. */
  stop(): Promise<void>;
}

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Every node online as the gateway sees it, or a reason. */
async function readyOrWhy(origin: string): Promise<true | string> {
  try {
    const res = await request(`${origin}/ready`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.body.json().catch(() => undefined)) as { ready?: boolean } | undefined;
    return res.statusCode === 200 && body?.ready === true ? true : `GET /ready → ${res.statusCode}`;
  } catch (err) {
    return (err as Error).message;
  }
}

function launch(mode: MetadataMode, port: number, env: Record<string, string>, log: string) {
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [gatewayEntry()], {
    // As npm start runs its children (MALLOC_ARENA_MAX=2), and quiet: the bench reads no log line.
    env: {
      MALLOC_ARENA_MAX: '2',
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      GATEWAY_ID: `bench-${mode}`,
      RATE_LIMITS: 'off',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  return child;
}

async function waitReady(child: ChildProcess, origin: string, log: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let why: true | string = 'not started';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`the gateway at ${origin} exited at start-up; see ${log}`);
    why = await readyOrWhy(origin);
    if (why === true) return;
    await sleep(200);
  }
  throw new Error(`the gateway at ${origin} was not ready within 30 s (${why}); see ${log}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Creates the database, starts both gateways and waits until each sees every
 * node. Throws (having cleaned up) when PostgreSQL does not answer at
 * `adminUrl` or a gateway does not start.
 */
export async function startBenchGateways(
  adminUrl: string,
  scratch: string,
): Promise<BenchGateways> {
  if (!existsSync(gatewayEntry()))
    throw new Error(`${gatewayEntry()} is missing: run npm run build`);
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  const database = `trove_bench_${process.pid}_${Date.now().toString(36)}`;
  const children: ChildProcess[] = [];
  const killAll = () => children.forEach((c) => c.kill('SIGKILL'));
  process.once('exit', killAll);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(children.map(stopChild));
    process.off('exit', killAll);
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  };
  try {
    await admin.query(`CREATE DATABASE ${database}`);
    const url = new URL(adminUrl);
    url.pathname = `/${database}`;
    const start = async (mode: MetadataMode, env: Record<string, string>) => {
      const port = await freePort();
      const origin = `http://127.0.0.1:${port}`;
      const log = join(scratch, `gateway-${mode}.log`);
      const child = launch(mode, port, env, log);
      children.push(child);
      await waitReady(child, origin, log);
      const gw: BenchGateway = { mode, origin, pid: child.pid!, log, backends: [] };
      return gw;
    };
    // One at a time: the PostgreSQL one runs its migrations while nothing else loads the machine.
    const sqlite = await start('sqlite', {
      DATABASE_URL: '', // empty means unset, whatever .env says
      DB_PATH: join(scratch, 'metadata-bench.db'),
    });
    const postgres = await start('postgres', { DATABASE_URL: url.toString() });
    return {
      sqlite,
      postgres,
      refresh: async () => {
        const { rows } = await admin.query<{ pid: number }>(
          'SELECT pid FROM pg_stat_activity WHERE datname = $1',
          [database],
        );
        postgres.backends = rows.map((r) => r.pid);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

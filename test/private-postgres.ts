/**
 * A PostgreSQL server of a test's own, for tests that stop, kill or restart
 * it: the machine's shared server (test/postgres.ts) serves other test files
 * and must never go down. `initdb` into a temp directory, then `postgres` on
 * a free port, listening on 127.0.0.1 and on a socket in that directory,
 * trust authentication, superuser `postgres`.
 *
 * PostgreSQL refuses to run as root: when the tests run as root, the server
 * runs as the `postgres` OS user (`runuser`), owning the directory; otherwise
 * it runs as the current user.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from './harness.js';

/** Where the server binaries are: `$PG_BIN`, else Debian's PostgreSQL 15, 16 or 17, else PATH. */
function pgBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const found = ['17', '16', '15']
    .map((v) => `/usr/lib/postgresql/${v}/bin`)
    .find((dir) => existsSync(join(dir, 'postgres')));
  return found ?? '';
}

const asRoot = process.getuid?.() === 0;

/** Runs `file` as the server's OS user: `postgres` when we are root, else ourselves. */
function command(file: string, args: string[]): [string, string[]] {
  const bin = pgBin();
  const path = bin ? join(bin, file) : file;
  return asRoot ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args];
}

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  url: string;
  port: number;
  dataDir: string;
  /** A new database on this server; its URL. */
  createDatabase(name: string): Promise<string>;
  /** Starts the server (again, on the same port and data); resolves once it takes connections. */
  start(): Promise<void>;
  /**
   * Stops the server with `signal` and waits for it to exit: SIGINT is a
   * fast shutdown (sessions terminated, 57P01), SIGTERM a smart one, SIGQUIT
   * an immediate one (crash recovery at the next start), SIGKILL a crash.
   */
  stop(signal?: NodeJS.Signals): Promise<void>;
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server for good and removes its directory. */
  destroy(): Promise<void>;
}

/** A fresh cluster (initdb), started. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const root = await mkdtemp(join(tmpdir(), 'trove-pg-'));
  const dataDir = join(root, 'data');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    await chown(root, uid, gid);
  }
  const [initdb, initArgs] = command('initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '-A',
    'trust',
    '--no-sync',
    '--no-instructions',
  ]);
  execFileSync(initdb, initArgs, { stdio: 'pipe' });
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let server: { proc: ChildProcess; exited: Promise<void>; output: string[] } | undefined;

  const self: PrivatePostgres = {
    url,
    port,
    dataDir,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      const dbUrl = new URL(url);
      dbUrl.pathname = `/${name}`;
      return dbUrl.toString();
    },
    async start() {
      if (server) throw new Error('the private PostgreSQL is already running');
      const [file, args] = command('postgres', [
        '-D',
        dataDir,
        '-p',
        String(port),
        '-k',
        root,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
      ]);
      const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const output: string[] = [];
      proc.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
      proc.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
      const exited = new Promise<void>((done) => proc.once('exit', () => done()));
      server = { proc, exited, output };
      await waitFor('the private PostgreSQL to take connections', async () => {
        if (proc.exitCode !== null) throw new Error(`postgres exited: ${output.join('')}`);
        const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
        try {
          await client.connect();
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      });
    },
    async stop(signal = 'SIGINT') {
      if (!server) return;
      const { exited } = server;
      // The postmaster itself (runuser, between us and it, does not pass every signal on).
      const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      process.kill(pid, signal);
      await exited;
      server = undefined;
    },
    async restart(signal = 'SIGINT') {
      await self.stop(signal);
      await self.start();
    },
    async destroy() {
      await self.stop('SIGINT').catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
  };
  await self.start();
  return self;
}

/** Whether this machine can run a private server: the binaries, and a `postgres` user when root. */
export function canRunPrivatePostgres(): boolean {
  try {
    if (asRoot) execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
    execFileSync(join(pgBin(), 'postgres'), ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

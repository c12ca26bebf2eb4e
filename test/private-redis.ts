/**
 * A Redis server of a test's own, for tests that restart it or FLUSHALL it:
 * the machine's shared Redis (127.0.0.1:6379) serves other test files and
 * must never go down. `redis-server` on a free port, no persistence (as the
 * machine's), so a restart comes back empty, as a crashed cache would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './harness.js';

export interface PrivateRedis {
  /** `redis://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** Starts the server (again, on the same port); resolves once it answers PING. */
  start(): Promise<void>;
  /** Stops it with `signal` (SIGKILL: a crash) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** FLUSHALL: every key gone (locks, leases, rate-limit windows). */
  flushAll(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let server: { proc: ChildProcess; exited: Promise<void>; output: string[] } | undefined;

  const command = async (fn: (redis: Redis) => Promise<unknown>) => {
    const redis = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
    });
    redis.on('error', () => undefined); // a refused connection is the answer, not an event to crash on
    try {
      await redis.connect();
      return await fn(redis);
    } finally {
      redis.disconnect();
    }
  };

  const self: PrivateRedis = {
    url,
    port,
    async start() {
      if (server) throw new Error('the private Redis is already running');
      const proc = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const output: string[] = [];
      proc.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
      proc.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
      const exited = new Promise<void>((done) => proc.once('exit', () => done()));
      server = { proc, exited, output };
      await waitFor('the private Redis to answer PING', async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server exited: ${output.join('')}`);
        return (await command((r) => r.ping())) === 'PONG';
      });
    },
    async stop(signal = 'SIGTERM') {
      if (!server) return;
      const { proc, exited } = server;
      proc.kill(signal);
      await exited;
      server = undefined;
    },
    async flushAll() {
      await command((r) => r.flushall());
    },
    async destroy() {
      await self.stop('SIGKILL');
    },
  };
  await self.start();
  return self;
}

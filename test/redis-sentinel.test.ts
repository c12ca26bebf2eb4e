/**
 * Redis behind Sentinel, for real: a master, a replica and three sentinels
 * (redis-server processes on free ports in a temp dir). The client
 * createRedis builds from REDIS_SENTINELS finds the master through the
 * sentinels; when the master is SIGKILLed and the sentinels promote the
 * replica, the same client moves to the new master by itself, and the
 * download counter (Redlock and its cache, over the metadata store) works on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DownloadCounter } from '../gateway/download/download-counter.js';
import { loadGatewayConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { closeRedis, createRedis, createRedlock } from '../shared/redis.js';
import { checkRedisConnection } from '../shared/service-check.js';
import { SqliteMetadataStore, openDatabase } from '../shared/sqlite-metadata-store.js';
import { freePort, waitFor } from './harness.js';

const PASSWORD = 'sentinel-test-pw';
/** Not the default `mymaster`: a client that ignored REDIS_SENTINEL_NAME would find no master. */
const GROUP = 'trove-test';
/** Sentinel's fastest sensible settings: down after 1 s unanswered, a stuck failover retried after 5 s. */
const DOWN_AFTER_MS = 1000;
const FAILOVER_TIMEOUT_MS = 5000;

interface RedisProc {
  name: string;
  port: number;
  proc: ChildProcess;
  logFile: string;
  exited: Promise<void>;
}

let dir: string;
const procs: RedisProc[] = [];
let master: RedisProc;
let replica: RedisProc;
const sentinels: RedisProc[] = [];
let redis: Redis | undefined;
let store: SqliteMetadataStore | undefined;
const log = createLogger('test', 'silent');

/** redis-server with `args`, its output in <dir>/<name>.log. */
function startRedis(name: string, port: number, args: string[]): RedisProc {
  const logFile = join(dir, `${name}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const proc = spawn('redis-server', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.pipe(out, { end: false });
  proc.stderr!.pipe(out, { end: false });
  const exited = new Promise<void>((done) => proc.once('exit', () => done()));
  const p = { name, port, proc, logFile, exited };
  procs.push(p);
  return p;
}

/** One command to one server on its own short-lived connection. */
async function ask(port: number, command: string, ...args: (string | number)[]) {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    password: port === master.port || port === replica.port ? PASSWORD : undefined,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(command, ...args);
  } finally {
    client.disconnect();
  }
}

function logTails(): string {
  return procs
    .map(
      (p) => `--- ${p.name}\n${readFileSync(p.logFile, 'utf8').split('\n').slice(-15).join('\n')}`,
    )
    .join('\n');
}

/** The port and db of the server `client` is connected to, as that server sees it. */
async function whereIs(client: Redis): Promise<{ port: number; db: number; role: string }> {
  const server = await client.info('server');
  const info = (await client.client('INFO')) as string;
  const role = (await client.role())[0] as string;
  return {
    port: Number(/tcp_port:(\d+)/.exec(server)![1]),
    db: Number(/ db=(\d+)/.exec(info)![1]),
    role,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trove-sentinel-'));
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const auth = ['--requirepass', PASSWORD, '--masterauth', PASSWORD];
  const masterPort = await freePort();
  master = startRedis('master', masterPort, ['--port', String(masterPort), ...common, ...auth]);
  const replicaPort = await freePort();
  replica = startRedis('replica', replicaPort, [
    '--port',
    String(replicaPort),
    ...common,
    ...auth,
    '--replicaof',
    '127.0.0.1',
    String(masterPort),
  ]);
  try {
    await waitFor('the replica in sync', async () =>
      /master_link_status:up/.test(String(await ask(replicaPort, 'INFO', 'replication'))),
    );
    for (let i = 1; i <= 3; i++) {
      const port = await freePort();
      // Sentinel rewrites its config file as it learns the group: it must be its own, writable.
      const conf = join(dir, `sentinel${i}.conf`);
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${GROUP} 127.0.0.1 ${masterPort} 2`,
          `sentinel auth-pass ${GROUP} ${PASSWORD}`,
          `sentinel down-after-milliseconds ${GROUP} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${GROUP} ${FAILOVER_TIMEOUT_MS}`,
          '',
        ].join('\n'),
      );
      sentinels.push(startRedis(`sentinel${i}`, port, [conf, '--sentinel']));
    }
    // Every sentinel knows the replica and the two others, so a failover can be authorised.
    for (const s of sentinels) {
      await waitFor(`${s.name} ready to fail over`, async () => {
        const replicas = (await ask(s.port, 'SENTINEL', 'REPLICAS', GROUP)) as unknown[];
        const others = (await ask(s.port, 'SENTINEL', 'SENTINELS', GROUP)) as unknown[];
        return replicas.length === 1 && others.length === 2;
      });
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${logTails()}`);
  }
});

afterAll(async () => {
  if (redis) closeRedis(redis);
  await store?.close();
  for (const p of procs)
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await rm(dir, { recursive: true, force: true });
});

describe('Redis through Sentinel', () => {
  it('finds the master, and follows a failover to the promoted replica by itself', async () => {
    // REDIS_URL's host is never used with sentinels; its password and db are.
    const config = loadGatewayConfig({
      REDIS_URL: `redis://:${PASSWORD}@unused.invalid:6379/3`,
      REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      REDIS_SENTINEL_NAME: GROUP,
      STORAGE_DIR: dir,
    });
    expect(await checkRedisConnection(config.redisConnection)).toMatchObject({ ok: true });

    redis = createRedis(config.redisConnection, log);
    const key = `trove-test:sentinel:${process.pid}`;
    await redis.set(key, 'before');
    expect(await whereIs(redis)).toEqual({ port: master.port, db: 3, role: 'master' });
    // The write is on the replica before the master dies, so the failover cannot lose it.
    expect(await redis.wait(1, 5000)).toBe(1);

    // The download counter through the same client: Redlock acquire and release around the grant.
    store = new SqliteMetadataStore(openDatabase(config.dbPath));
    const file = { id: 'sentinelfile000000001', maxDownloads: 3, expiresAt: Date.now() + 3600_000 };
    await store.beginUpload({
      ...file,
      name: 'a.jpg',
      contentType: 'image/jpeg',
      createdAt: Date.now(),
      deleteTokenHash: 'h',
      owner: 'gw',
    });
    await store.commitUploads([{ ...file, size: 1, sha256: 'x', replicas: [] }]);
    const counter = new DownloadCounter({ redlock: createRedlock(redis), store, log });
    expect(await counter.take(file)).toEqual({ granted: true, left: 2 });

    const killedAt = Date.now();
    master.proc.kill('SIGKILL');
    await master.exited;

    // Writes fail fast while there is no master, then succeed again on the same client.
    const recovered = await waitFor(
      'a write after the failover',
      async () => (await redis!.set(key, 'after')) === 'OK' && Date.now(),
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${logTails()}`);
    });
    const failoverMs = recovered - killedAt;
    console.log(`sentinel failover: writes succeeded again ${failoverMs} ms after SIGKILL`);
    expect(failoverMs).toBeLessThan(30_000);

    expect(await whereIs(redis)).toEqual({ port: replica.port, db: 3, role: 'master' });
    // The sentinel that led the failover told the others; each says the replica is master now.
    for (const s of sentinels) {
      await waitFor(`${s.name} to name the new master`, async () => {
        const addr = (await ask(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', GROUP)) as string[];
        return addr[0] === '127.0.0.1' && Number(addr[1]) === replica.port;
      });
    }
    expect(await redis.get(key)).toBe('after');

    // The counter goes on from the store's count, whatever Redis kept.
    expect(await counter.take(file)).toEqual({ granted: true, left: 1 });
    expect(await counter.take(file)).toEqual({ granted: true, left: 0 });
    expect(await counter.take(file)).toEqual({ granted: false, left: 0 });
    expect((await store.getFile(file.id))?.downloadsUsed).toBe(3);
    await redis.del(key, `trove:downloads:${file.id}`);
  });

  it('is reported down by npm start only when no sentinel answers', async () => {
    const deadPort = await freePort();
    const conn = {
      url: 'redis://127.0.0.1:6379',
      sentinelName: GROUP,
      sentinels: [{ host: '127.0.0.1', port: deadPort }],
    };
    expect(await checkRedisConnection(conn)).toMatchObject({ ok: false });
    conn.sentinels.push({ host: '127.0.0.1', port: sentinels[1]!.port });
    expect(await checkRedisConnection(conn)).toMatchObject({ ok: true });
  });
});

describe('a Redis client the library gave up on', () => {
  it('connects again by itself: only closeRedis ends it (the failover detector race)', async () => {
    const client = createRedis(
      { url: 'redis://127.0.0.1:6379', sentinels: undefined, sentinelName: 'mymaster' },
      log,
    );
    try {
      // What the sentinels' failover detector does when +switch-master comes while the client
      // is reconnecting: it closes the connector under the connect attempt, which rejects, and
      // ioredis then sets the client to `end` for good: every command fails "Connection is closed".
      (client as unknown as { connector: { disconnect(): void } }).connector.disconnect();
      await waitFor('ioredis to end the client', async () => client.status === 'end');
      await waitFor(
        'a command through the same client',
        async () => (await client.ping()) === 'PONG',
        5000,
      );
    } finally {
      closeRedis(client);
    }
    await waitFor('closeRedis to end it for good', async () => client.status === 'end');
    await new Promise((r) => setTimeout(r, 1000));
    expect(client.status).toBe('end');
  });
});

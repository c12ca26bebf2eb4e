/**
 * Test cluster: the real entry points (storage-node/main.ts, gateway/main.ts)
 * as child processes on free ports, in a temp directory, one log file per
 * process. Tests talk HTTP to it as a user would and kill processes with real
 * signals.
 */
import Database from 'better-sqlite3';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createDatabase, queryPg } from './postgres.js';
import { Redis } from 'ioredis';
import { deleteTopology } from '../shared/amqp.js';
import { netnsCommand } from './netns.js';
import { TEST_PROCESS_MARK } from './test-processes.js';

export const ROOT = resolve(import.meta.dirname, '..');
const execFileAsync = promisify(execFile);

export interface Proc {
  name: string;
  proc: ChildProcess;
  logFile: string;
  exited: Promise<void>;
  /** A worker's GET /metrics URL (each test worker listens on a free port). */
  metricsUrl?: string;
}

export interface TestNode {
  id: string;
  url: string;
  port: number;
  dataDir: string;
  proc: Proc | undefined;
  /** The network namespace it runs in (test/netns.ts), when not the root one. */
  namespace?: string;
}

/** Where a further node runs (`Cluster.addNode`): its address, in a network namespace or not. */
export interface NodePlace {
  /** The address it listens on (NODE_HOST); 127.0.0.1 by default, required with `namespace`. */
  address?: string;
  /** Its network namespace (test/netns.ts); it listens on NAMESPACE_NODE_PORT there. */
  namespace?: string;
}

/** The port of a node in a network namespace of its own (each namespace has all its ports). */
export const NAMESPACE_NODE_PORT = 9001;

export interface Cluster {
  dir: string;
  secret: string;
  nodes: TestNode[];
  gatewayUrl: string;
  gateway: Proc | undefined;
  dbPath: string;
  /** Where the metadata lives; `databaseUrl` is set in PostgreSQL mode. */
  metadata: MetadataKind;
  databaseUrl: string | undefined;
  /** Runs a read-only query on the metadata (SQLite or PostgreSQL, with `$1`-free SQL both accept). */
  query<T>(sql: string): Promise<T[]>;
  /** RabbitMQ queue prefix of this cluster (its queues are deleted at stop). */
  clusterName: string;
  /** The environment every process of the cluster gets (NODES, STORAGE_DIR, CLUSTER_SECRET, …). */
  env: Readonly<Record<string, string>>;
  startNode(id: string): Promise<void>;
  /**
   * Creates and starts a node that is not in NODES (a layout change adds it to
   * the cluster later); it joins `nodes`. Its start waits for the gateway to
   * see it online only once the gateway lists it.
   */
  addNode(id: string, place?: NodePlace): Promise<TestNode>;
  /** Starts the main gateway, or with a name other than "gateway", another one on its own port (its URL is returned); `extraEnv` is for it alone (its HOST: the address it binds, 127.0.0.1 by default). */
  startGateway(name?: string, extraEnv?: Record<string, string>): Promise<string>;
  /** Starts a worker, its metrics on a free port (of WORKER_METRICS_HOST); `extraEnv` is for it alone. */
  startWorker(name?: string, extraEnv?: Record<string, string>): Promise<Proc>;
  proc(name: string): Proc | undefined;
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  logTail(lines?: number): string;
  /** Log lines at level error or above (pino levels 50, 60) a process has written. */
  errorLines(name: string): string[];
  stop(): Promise<void>;
}

/**
 * The kernel's ephemeral range (where it picks ports for `listen(0)` and for
 * every outgoing connection). A test port inside it could be taken by any
 * client socket on the machine between our check and the service's listen,
 * or while a killed node is down before its restart on the same port.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

const handedOut = new Set<number>();

/** Whether nothing listens on host:port now (127.0.0.1 unless told). */
function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => done(false));
    srv.listen(port, host, () => srv.close(() => done(true)));
  });
}

/**
 * A port for a service under test: free now, below the ephemeral range (so
 * no outgoing connection can take it before the service binds it, nor while
 * the service is down for a restart), never handed out twice by this process.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const high = ephemeralLow - 1;
  const low = Math.max(1024, high - 12_000);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canListen(port, host)) return port;
  }
  throw new Error(`no free port found in ${low}-${high}`);
}

function spawnService(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  logDir: string,
  namespace?: string,
): Proc {
  const logFile = join(logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const argv = [join(ROOT, 'dist', script), ...args];
  // In a network namespace: `ip netns exec` execs node, so the child's pid is still the service's.
  const { command, args: commandArgs } = namespace
    ? netnsCommand(namespace, process.execPath, argv)
    : { command: process.execPath, args: argv };
  const proc = spawn(command, commandArgs, {
    cwd: ROOT,
    env: { ...process.env, ...env, [TEST_PROCESS_MARK]: TEST_RUN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  proc.stdout!.pipe(log, { end: false });
  proc.stderr!.pipe(log, { end: false });
  const exited = new Promise<void>((done) => proc.once('exit', () => done()));
  return { name, proc, logFile, exited };
}

/** The test run's id (set by global-setup.ts); every process the harness starts carries it in TROVE_TEST_PROCESS. */
const TEST_RUN = process.env.TROVE_TEST_RUN ?? `adhoc-${process.pid}`;

/** Processes this test file started that still run. */
const running = new Set<ChildProcess>();
// A file whose afterAll timed out never stopped its cluster: its processes die with the file's worker.
process.once('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
});

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

async function waitHealthy(url: string, proc: Proc): Promise<void> {
  await waitFor(`${proc.name} /health`, async () => {
    if (proc.proc.exitCode !== null)
      throw new Error(`${proc.name} exited: ${readFileSync(proc.logFile, 'utf8').slice(-2000)}`);
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  });
}

export interface ClusterOptions {
  nodes?: number;
  /** Extra environment for every process. */
  env?: Record<string, string>;
  /** Start without the gateway. */
  noGateway?: boolean;
  /** Also start a worker. */
  worker?: boolean;
  /** Where the metadata lives: the SQLite file (default), or a PostgreSQL database of its own. */
  metadata?: MetadataKind;
  /**
   * PostgreSQL mode on this database (a private server's, test/private-postgres.ts)
   * instead of a new one on the shared server; the test owns it, it is not dropped.
   */
  databaseUrl?: string;
  /** Loopback address of each storage node, in order (127.0.0.1 for those not given). */
  nodeHosts?: string[];
  /**
   * Network namespace and address of each storage node, in order (test/netns.ts):
   * node i runs inside namespace i, listens on its address at NAMESPACE_NODE_PORT,
   * and is http://address:9001 in NODES. Wins over `nodeHosts`.
   */
  nodeNamespaces?: { namespace: string; address: string }[];
  /** Runs before each start of a node (its data directory made, a filesystem mounted on it, …). */
  prepareNode?: (node: TestNode) => Promise<void>;
}

export type MetadataKind = 'sqlite' | 'postgres';
/** Both stores, for suites that run in each mode (`describe.each(METADATA_KINDS)`). */
export const METADATA_KINDS: MetadataKind[] = ['sqlite', 'postgres'];

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Deletes a test cluster's Redis keys (all under its CLUSTER_NAME), so runs leave nothing behind. */
async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'trove-test-'));
  const logDir = join(dir, 'logs');
  await mkdir(logDir);
  const secret = randomBytes(24).toString('hex');
  const nodes: TestNode[] = [];
  const nodeHosts = new Map<string, string>();
  for (let i = 1; i <= (opts.nodes ?? 3); i++) {
    const place = opts.nodeNamespaces?.[i - 1];
    const host = place?.address ?? opts.nodeHosts?.[i - 1] ?? '127.0.0.1';
    const port = place ? NAMESPACE_NODE_PORT : await freePort(host);
    nodeHosts.set(`node${i}`, host);
    nodes.push({
      id: `node${i}`,
      port,
      url: `http://${host}:${port}`,
      dataDir: join(dir, `node${i}`),
      proc: undefined,
      ...(place && { namespace: place.namespace }),
    });
  }
  /** Nodes made by addNode: not in NODES. */
  const added = new Set<string>();
  const gatewayPort = await freePort();
  const metadata = opts.databaseUrl ? 'postgres' : (opts.metadata ?? 'sqlite');
  const database = opts.databaseUrl
    ? { url: opts.databaseUrl, drop: async () => undefined }
    : metadata === 'postgres'
      ? await createDatabase('cluster')
      : undefined;
  const env: Record<string, string> = {
    ...(database && { DATABASE_URL: database.url }),
    STORAGE_DIR: dir,
    CLUSTER_SECRET: secret,
    NODES: nodes.map((n) => `${n.id}=${n.url}`).join(','),
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    PORT: String(gatewayPort),
    PROBE_SCHEDULE: '* * * * * *',
    CLUSTER_NAME: `trove-test-${randomBytes(4).toString('hex')}`,
    DELETE_GRACE_SECONDS: '1',
    SWEEP_SCHEDULE: '*/2 * * * * *',
    ...opts.env,
  };
  const procs = new Map<string, Proc>();
  /** Each gateway's port, kept across its restarts (clients keep their URL). */
  const gatewayPorts = new Map<string, number>([['gateway', gatewayPort]]);

  const cluster: Cluster = {
    dir,
    secret,
    nodes,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    gateway: undefined,
    dbPath: join(dir, 'trove.db'),
    metadata,
    databaseUrl: database?.url,
    async query<T>(sql: string) {
      return database ? ((await queryPg(database.url, sql)) as T[]) : queryDb<T>(cluster, sql);
    },
    clusterName: env.CLUSTER_NAME!,
    env,
    async startNode(id) {
      const node = nodes.find((n) => n.id === id)!;
      const nodeEnv = {
        ...env,
        NODE_HOST: nodeHosts.get(id)!,
        // Not in NODES, where a node's port comes from otherwise.
        ...(added.has(id) && { NODE_PORT: String(node.port) }),
      };
      await opts.prepareNode?.(node);
      const proc = spawnService(
        id,
        'storage-node/main.js',
        ['--id', id],
        nodeEnv,
        logDir,
        node.namespace,
      );
      procs.set(id, proc);
      node.proc = proc;
      await waitHealthy(node.url, proc);
      // A restarted node takes writes once the gateway has probed it: wait for that too.
      const gw = cluster.gateway?.proc;
      if (gw && gw.exitCode === null && gw.signalCode === null) {
        const clusterView = async () =>
          (await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as {
            nodes: { id: string; status: string }[];
          };
        // A node not in NODES is waited for only once the gateway knows of it (a layout added it).
        if (added.has(id) && !(await clusterView()).nodes.some((n) => n.id === id)) return;
        await waitFor(
          `gateway sees ${id} online`,
          async () => (await clusterView()).nodes.find((n) => n.id === id)?.status === 'online',
        );
      }
    },
    async addNode(id, place = {}) {
      if (nodes.some((n) => n.id === id)) throw new Error(`the cluster has a node ${id} already`);
      if (place.namespace && !place.address)
        throw new Error(`addNode(${id}): a node in a namespace needs its address`);
      const host = place.address ?? '127.0.0.1';
      const port = place.namespace ? NAMESPACE_NODE_PORT : await freePort(host);
      const node: TestNode = {
        id,
        port,
        url: `http://${host}:${port}`,
        dataDir: join(dir, id),
        proc: undefined,
        ...(place.namespace && { namespace: place.namespace }),
      };
      nodes.push(node);
      nodeHosts.set(id, host);
      added.add(id);
      await cluster.startNode(id);
      return node;
    },
    async startGateway(name = 'gateway', extraEnv = {}) {
      const main = name === 'gateway';
      // Another host's gateway: HOST in `extraEnv` names the loopback address it binds.
      const host = extraEnv.HOST ?? '127.0.0.1';
      const port = gatewayPorts.get(name) ?? (await freePort(host));
      gatewayPorts.set(name, port);
      const url = `http://${host}:${port}`;
      const proc = spawnService(
        name,
        'gateway/main.js',
        [],
        // GATEWAY_ID defaults to the name; a test may give two processes the same one.
        { ...env, GATEWAY_ID: name, ...extraEnv, PORT: String(port) },
        logDir,
      );
      procs.set(name, proc);
      if (main) cluster.gateway = proc;
      await waitHealthy(url, proc);
      return url;
    },
    async startWorker(name = 'worker', extraEnv = {}) {
      const metricsHost = extraEnv.WORKER_METRICS_HOST ?? '127.0.0.1';
      const workerEnv = {
        ...env,
        WORKER_ID: name,
        WORKER_METRICS_PORT: String(await freePort(metricsHost)),
        ...extraEnv,
      };
      // A restarted worker appends to the same log: wait for one more "consuming jobs" line.
      const consuming = (file: string) =>
        readFileSync(file, 'utf8').split('consuming jobs').length - 1;
      const before = procs.has(name) ? consuming(procs.get(name)!.logFile) : 0;
      const proc = spawnService(name, 'worker/main.js', [], workerEnv, logDir);
      proc.metricsUrl = `http://${metricsHost}:${workerEnv.WORKER_METRICS_PORT}/metrics`;
      procs.set(name, proc);
      await waitFor(`${name} consuming`, async () => {
        if (proc.proc.exitCode !== null)
          throw new Error(`${name} exited: ${readFileSync(proc.logFile, 'utf8').slice(-2000)}`);
        return consuming(proc.logFile) > before;
      });
      return proc;
    },
    proc(name) {
      return procs.get(name);
    },
    async kill(name, signal = 'SIGKILL') {
      const proc = procs.get(name);
      if (!proc || proc.proc.exitCode !== null || proc.proc.signalCode !== null) return;
      proc.proc.kill(signal);
      // A graceful stop may wait for requests in flight; tests do not wait long for it.
      const force = setTimeout(() => proc.proc.kill('SIGKILL'), 3000);
      await proc.exited;
      clearTimeout(force);
    },
    logTail(lines = 40) {
      return [...procs.values()]
        .map((p) => {
          const text = readFileSync(p.logFile, 'utf8')
            .trimEnd()
            .split('\n')
            .slice(-lines)
            .join('\n');
          return `── ${p.name} (${p.logFile}) ──\n${text}`;
        })
        .join('\n');
    },
    errorLines(name) {
      const proc = procs.get(name);
      if (!proc) return [];
      return readFileSync(proc.logFile, 'utf8')
        .split('\n')
        .filter((line) => /"level":(50|60)/.test(line));
    },
    async stop() {
      await Promise.all([...procs.keys()].map((name) => cluster.kill(name, 'SIGTERM')));
      await deleteTopology(AMQP_URL, cluster.clusterName).catch(() => undefined);
      await deleteRedisKeys(cluster.clusterName).catch(() => undefined);
      await database?.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    await Promise.all(nodes.map((n) => cluster.startNode(n.id)));
    if (!opts.noGateway) await cluster.startGateway();
    if (opts.worker) await cluster.startWorker();
  } catch (err) {
    const tail = cluster.logTail();
    await cluster.stop();
    throw new Error(`${(err as Error).message}\n${tail}`);
  }
  return cluster;
}

/**
 * Closes, from the broker's side, the RabbitMQ connections a process of the
 * cluster opened (every process's when `processName` is omitted), as a broker
 * restart or a network cut would; returns how many. Asynchronous: rabbitmqctl
 * takes a second or more, and a caller with traffic under way must not stall.
 */
export async function closeAmqpConnections(
  cluster: Pick<Cluster, 'clusterName'>,
  processName?: string,
): Promise<number> {
  const wanted = `{"connection_name","${cluster.clusterName}:${processName ?? ''}`;
  const { stdout } = await execFileAsync('rabbitmqctl', [
    'list_connections',
    '-q',
    'pid',
    'client_properties',
  ]);
  const pids = stdout
    .split('\n')
    .filter((line) => line.includes(processName ? `${wanted}"}` : wanted))
    .map((line) => line.split('\t')[0]!);
  await Promise.all(
    pids.map((pid) =>
      execFileAsync('rabbitmqctl', ['close_connection', pid, 'closed by a Trove test']),
    ),
  );
  return pids.length;
}

/** The JSON log lines of a process of the cluster that `match` accepts (every line when omitted). */
export function logLines(
  cluster: Cluster,
  name: string,
  match: (line: Record<string, unknown>) => boolean = () => true,
): Record<string, unknown>[] {
  const proc = cluster.proc(name);
  if (!proc) return [];
  return readFileSync(proc.logFile, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return []; // not a log line (a crash's stack trace), or one still being written
      }
    })
    .filter(match);
}

/**
 * The line a gateway or node logs for request `requestId` (its `X-Request-Id`)
 * once the response has ended or the client left (shared/request-log.ts):
 * from then on the process is done with it. Undefined until then.
 */
export function requestLine(
  cluster: Cluster,
  name: string,
  requestId: string,
): { status: number; aborted?: boolean; method: string; path: string } | undefined {
  const [line] = logLines(cluster, name, (l) => l.msg === 'request' && l.request_id === requestId);
  return line as { status: number; aborted?: boolean; method: string; path: string } | undefined;
}

/**
 * Messages of each RabbitMQ queue, as the broker counts them: `ready` to be
 * delivered, and `unacked`: delivered to a consumer that has not settled them
 * yet (a job in a worker's hands). Only `rabbitmqctl` sees the second.
 */
export function queueCountsAll(): Map<string, { ready: number; unacked: number }> {
  const list = execFileSync(
    'rabbitmqctl',
    ['list_queues', '-q', 'name', 'messages_ready', 'messages_unacknowledged'],
    { encoding: 'utf8' },
  );
  const counts = new Map<string, { ready: number; unacked: number }>();
  for (const [name, ready, unacked] of list.split('\n').map((line) => line.split('\t')))
    if (name && unacked !== undefined)
      counts.set(name, { ready: Number(ready), unacked: Number(unacked) });
  return counts;
}

/** One queue's counts (see queueCountsAll). */
export function queueCounts(queue: string): { ready: number; unacked: number } {
  const counts = queueCountsAll().get(queue);
  if (!counts) throw new Error(`RabbitMQ has no queue ${queue}`);
  return counts;
}

/** Resident set size of a process, in bytes, and its peak (VmHWM). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** Runs a read-only query on the gateway's SQLite file (WAL lets it read while the gateway writes). */
export function queryDb<T>(cluster: Cluster, sql: string): T[] {
  const db = new Database(cluster.dbPath, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

/** Every file under `dir`, as paths relative to it. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

/**
 * What uploads in progress of file `fileId` hold on any node: S3 multipart
 * part blobs (`blobs/…/<fileId>.part-…`) and tus staged files
 * (`staging/<fileId>.tus-…`).
 */
export async function partsOnNodes(
  cluster: Pick<Cluster, 'nodes'>,
  fileId: string,
): Promise<string[]> {
  const found: string[] = [];
  for (const node of cluster.nodes) {
    const blobs = await filesUnder(join(node.dataDir, 'blobs'));
    const staged = await filesUnder(join(node.dataDir, 'staging'));
    found.push(
      ...blobs.filter((f) => f.includes(`${fileId}.part-`)),
      ...staged.filter((f) => f.startsWith(`${fileId}.tus-`)),
    );
  }
  return found;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * A JPEG-looking stream of `size` random bytes (JPEG magic, then noise),
 * generated chunk by chunk, never held whole. `digest()` is valid once it ended.
 */
export function jpegStream(
  size: number,
  chunk = 1024 * 1024,
): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let sent = 0;
  let hex: string | undefined;
  const stream = new Readable({
    read() {
      if (sent >= size) {
        hex = hash.digest('hex');
        this.push(null);
        return;
      }
      const buf = randomBytes(Math.min(chunk, size - sent));
      if (sent === 0) buf.set([0xff, 0xd8, 0xff, 0xe0], 0);
      sent += buf.length;
      hash.update(buf);
      this.push(buf);
    },
  });
  return { stream, digest: () => hex ?? '' };
}

/** Hashes a response body as it streams; resolves with its sha256 and length. */
export async function hashBody(
  body: AsyncIterable<Uint8Array>,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of body) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

export const fixture = (name: string) => readFileSync(join(ROOT, 'test', 'fixtures', name));

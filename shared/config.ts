/**
 * Configuration, parsed and validated once at start-up. Nothing else in the
 * project reads `process.env`: each service's `run.ts` calls a loader here and passes
 * the typed result down. A bad value throws a ConfigError that names every
 * offending variable, and the process stops before listening.
 */
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export type Env = Record<string, string | undefined>;

/** A storage node as the gateway (and the chain) address it. */
export interface NodeAddress {
  id: string;
  url: string;
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  tib: 1024 ** 4,
};

/** Parses "1048576", "100MB", "1.5 GiB" into bytes; undefined when malformed. */
export function parseBytes(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!match) return undefined;
  const unit = BYTE_UNITS[match[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.floor(Number(match[1]) * unit);
}

const bytes = z.string().transform((text, ctx) => {
  const value = parseBytes(text);
  if (value === undefined || value <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: `"${text}" is not a size (e.g. 104857600, 100MB, 1GiB)`,
    });
    return z.NEVER;
  }
  return value;
});

const bool = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'], {
    message: 'expected true or false',
  })
  .transform((v) => ['1', 'true', 'yes', 'on'].includes(v));

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max);
const port = int(0, 65535);

const nodeId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a node id is 1-64 of [A-Za-z0-9_-]');

/** "node1=http://127.0.0.1:9001,node2=…" → [{id,url}]. */
const nodeList = z.string().transform((text, ctx) => {
  const nodes: NodeAddress[] = [];
  for (const entry of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    const id = entry.slice(0, eq);
    const url = entry.slice(eq + 1).replace(/\/+$/, '');
    if (eq <= 0 || !nodeId.safeParse(id).success || !URL.canParse(url) || !/^https?:/.test(url)) {
      ctx.addIssue({ code: 'custom', message: `"${entry}" is not id=http://host:port` });
      return z.NEVER;
    }
    if (nodes.some((n) => n.id === id)) {
      ctx.addIssue({ code: 'custom', message: `node id "${id}" appears twice` });
      return z.NEVER;
    }
    nodes.push({ id, url });
  }
  if (nodes.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'at least one node is needed' });
    return z.NEVER;
  }
  return nodes;
});

export const DEFAULT_NODES =
  'node1=http://127.0.0.1:9001,node2=http://127.0.0.1:9002,node3=http://127.0.0.1:9003';

const common = {
  /** Root of runtime data: node disks, the metadata database, pid files, the secret. */
  STORAGE_DIR: z.string().min(1).default('storage'),
  /** Shared secret of the cluster; generated into STORAGE_DIR/cluster.secret when unset. */
  CLUSTER_SECRET: z.string().min(16, 'use at least 16 characters').optional(),
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `json` lines, `pretty` (human-readable) lines, or `auto`: pretty on a terminal, JSON otherwise. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** Every storage node of the cluster, as id=url pairs. */
  NODES: nodeList.prefault(DEFAULT_NODES),
  /** Redis, for download counters, locks and shared node health. */
  REDIS_URL: z
    .string()
    .refine((s) => /^rediss?:\/\//.test(s) && URL.canParse(s), {
      message: 'expected redis://host:port',
    })
    .default('redis://127.0.0.1:6379'),
  /** RabbitMQ, for background jobs. */
  AMQP_URL: z
    .string()
    .refine((s) => /^amqps?:\/\//.test(s) && URL.canParse(s), {
      message: 'expected amqp://user:pass@host:port',
    })
    .default('amqp://guest:guest@127.0.0.1:5672'),
  /** Names this cluster's RabbitMQ queues and shared Redis state, so several clusters can share both servers. */
  CLUSTER_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,40}$/, 'use 1-40 of [A-Za-z0-9_-]')
    .default('trove'),
  /** SQLite metadata file (gateways and workers share it); defaults to STORAGE_DIR/trove.db. */
  DB_PATH: z.string().min(1).optional(),
};

const nodeSchema = z.object({
  ...common,
  /** Which node this process is (or `--id`). */
  NODE_ID: nodeId,
  /** Interface to listen on; loopback by default, nodes are internal. */
  NODE_HOST: z.string().min(1).default('127.0.0.1'),
  /** Port; defaults to the port of this node's entry in NODES. */
  NODE_PORT: port.optional(),
  /** Data directory; defaults to STORAGE_DIR/<id>. */
  NODE_DATA_DIR: z.string().min(1).optional(),
  /** How long to wait for a chain successor to connect or answer a read, in ms. */
  NODE_TIMEOUT_MS: int(100).default(5000),
  /** Time between the starts of two scrub passes (re-read and verify every blob), in s; 0 disables. */
  SCRUB_INTERVAL_SECONDS: int(0).default(86400),
  /** Read rate of the scrubber, so it never starves requests. */
  SCRUB_BYTES_PER_SECOND: bytes.default(50e6),
});

const gatewaySchema = z.object({
  ...common,
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: port.default(8080),
  /** Stable name of this gateway; pending uploads are tagged with it for crash cleanup. */
  GATEWAY_ID: nodeId.optional(),
  /** Copies kept of every object. */
  REPLICATION_FACTOR: int(1, 16).default(3),
  /** Copies that must be fsynced, with the right sha256, before an upload is answered 201. */
  WRITE_QUORUM: int(1, 16).default(2),
  /** Largest accepted file, enforced while streaming. */
  MAX_UPLOAD_BYTES: bytes.default(1024 ** 3),
  /** Most files accepted in one multipart upload. */
  MAX_FILES_PER_UPLOAD: int(1, 1000).default(20),
  /** Comma-separated MIME patterns decided from magic bytes, e.g. "image/*,application/pdf" or "*\/*". */
  ALLOWED_TYPES: z
    .string()
    .default('image/*')
    .transform((s) =>
      s
        .split(',')
        .map((t) => t.trim().toLowerCase())
        .filter(Boolean),
    )
    .refine(
      (list) =>
        list.length > 0 && list.every((t) => /^[a-z0-9.+-]+\/(\*|[a-z0-9.+-]+)$|^\*\/\*$/.test(t)),
      {
        message: 'expected MIME patterns such as image/*,application/pdf',
      },
    ),
  /** Largest image (width × height) /process and /batch decode; bounds the memory of one decode. */
  MAX_INPUT_PIXELS: int(1).default(50_000_000),
  /** Images /process and /batch decode at once, a slot each, taken once a request's body is in; beyond that, 503 instead of a queue. */
  PROCESS_CONCURRENCY: int(1, 256).default(availableParallelism()),
  /** Most images in one /batch request. */
  MAX_BATCH_FILES: int(1, 1000).default(20),
  /** Largest /batch request body (every image together); each image is also held to MAX_UPLOAD_BYTES. */
  MAX_BATCH_BYTES: bytes.default(256 * 1024 ** 2),
  /** Inputs of /process and /batch on the spool at once, in bytes; defaults to PROCESS_CONCURRENCY × the larger of MAX_UPLOAD_BYTES and MAX_BATCH_BYTES. */
  PROCESS_SPOOL_BYTES: bytes.optional(),
  /** Time a /process or /batch body gets to arrive, whatever its rate, in s; each BODY_MIN_RATE bytes received add 1 s. */
  BODY_TIMEOUT_SECONDS: int(1, 3600).default(30),
  /** Slowest average rate, in bytes per second, at which a /process or /batch body keeps arriving once BODY_TIMEOUT_SECONDS is spent. */
  BODY_MIN_RATE: bytes.default(1000),
  /** Downloads a share link allows when the upload does not say. */
  DEFAULT_MAX_DOWNLOADS: int(0, 1_000_000).default(3),
  /** Highest max_downloads an upload may ask for. */
  MAX_DOWNLOADS_LIMIT: int(1, Number.MAX_SAFE_INTEGER).default(1_000_000),
  /** Lifetime of an upload when it does not say, in seconds. */
  DEFAULT_TTL_SECONDS: int(1).default(3600),
  /** Longest lifetime an upload may ask for, in seconds. */
  MAX_TTL_SECONDS: int(1).default(7 * 24 * 3600),
  /** Base of absolute links (e.g. https://abc.ngrok.app); else derived from the request. */
  PUBLIC_URL: z
    .string()
    .refine((s) => URL.canParse(s) && /^https?:/.test(s), { message: 'expected an http(s) URL' })
    .transform((s) => s.replace(/\/+$/, ''))
    .optional(),
  /** Honour X-Forwarded-Proto/Host (behind ngrok or nginx). */
  TRUST_PROXY: bool.default(false),
  /** When set, uploads and processing need `Authorization: Bearer <token>` (set it before going public). */
  UPLOAD_TOKEN: z.string().min(8, 'use at least 8 characters').optional(),
  /** When set, GET /metrics needs `Authorization: Bearer <token>`; open when unset (docs/metrics.md). */
  METRICS_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  /** When set, turns on the admin API (/admin/*), which needs `Authorization: Bearer <token>`; off when unset. */
  ADMIN_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  /** Time a node gets to connect and send the first byte of a read, in ms. */
  NODE_TIMEOUT_MS: int(100).default(5000),
  /** Connections per storage node for reads; a download holds one for its whole transfer, and one more is refused (503 NODES_BUSY when every replica is full). */
  NODE_READ_CONNECTIONS: int(1, 10_000).default(128),
  /** node-cron schedule (with seconds) of the gateway's node health probes. */
  PROBE_SCHEDULE: z
    .string()
    .default('*/2 * * * * *')
    .refine((s) => cron.validate(s), { message: 'not a cron expression, e.g. */2 * * * * *' }),
  /** Consecutive failed probes or requests (from any gateway) that make a suspect node offline. */
  OFFLINE_AFTER_FAILURES: int(1, 100).default(3),
  /** Uploads still pending after this many seconds are treated as abandoned and cleaned up. */
  PENDING_UPLOAD_TIMEOUT_SECONDS: int(60).default(6 * 3600),
  /** Per-client rate limits (gateway/http/rate-limit.ts), shared by every gateway through Redis; `off` disables them all. */
  RATE_LIMITS: bool.default(true),
  /** The window the RATE_LIMIT_* counts are per, in seconds. */
  RATE_LIMIT_WINDOW_SECONDS: int(1, 86400).default(60),
  /** Upload, /process and /batch requests per client per window; 0 = no limit. */
  RATE_LIMIT_UPLOADS: int(0, 1_000_000).default(120),
  /** Download attempts (/download/:id, /s/:id, thumbnails) per client per window; 0 = no limit. */
  RATE_LIMIT_DOWNLOADS: int(0, 1_000_000).default(600),
  /** Download attempts answered "no such file" (404, or 410 expired/deleted) per client per window, before its attempts are refused; 0 = no limit. */
  RATE_LIMIT_MISSES: int(0, 1_000_000).default(30),
});

const workerSchema = z.object({
  ...common,
  /** Name of this worker in logs and in its RabbitMQ connection. */
  WORKER_ID: nodeId.optional(),
  /** Jobs a worker holds unacknowledged at once (RabbitMQ prefetch). */
  WORKER_PREFETCH: int(1, 1000).default(8),
  /** Tries of a failing job (with backoff) before it goes to the dead-letter queue. */
  JOB_ATTEMPTS: int(1, 20).default(4),
  /** Time downloads already under way get to finish before a deleted file's blobs go, in s. */
  DELETE_GRACE_SECONDS: int(0, 3600).default(10),
  /** How long a tombstone keeps answering 410 (instead of 404) before it is purged, in s. */
  TOMBSTONE_RETENTION_SECONDS: int(1).default(7 * 24 * 3600),
  /** node-cron schedule (with seconds) of the expiry sweep, the safety net behind delayed messages. */
  SWEEP_SCHEDULE: z
    .string()
    .default('*/30 * * * * *')
    .refine((s) => cron.validate(s), { message: 'not a cron expression, e.g. */30 * * * * *' }),
  /** Time a node gets to answer a delete, in ms. */
  NODE_TIMEOUT_MS: int(100).default(5000),
  /** node-cron schedule of the repair sweep (anti-entropy of every node, retry of every unhealthy replica). */
  REPAIR_SCHEDULE: z
    .string()
    .default('0 */5 * * * *')
    .refine((s) => cron.validate(s), { message: 'not a cron expression, e.g. 0 */5 * * * *' }),
  /** Bandwidth all repairs of one worker may use together (0 = unlimited). */
  REPAIR_BYTES_PER_SECOND: bytes.or(z.literal('0').transform(() => 0)).default(50e6),
  /** A blob no live file owns is removed by anti-entropy once it is this old, in s. */
  ORPHAN_GRACE_SECONDS: int(0).default(3600),
  /** Copies written of every variant (as the gateway's REPLICATION_FACTOR for originals). */
  REPLICATION_FACTOR: int(1, 16).default(3),
  /** Copies of a variant that must be stored before it is recorded; fewer is retried later. */
  WRITE_QUORUM: int(1, 16).default(2),
  /** Largest image (width × height, every frame of an animation) the worker decodes. */
  MAX_INPUT_PIXELS: int(1).default(50_000_000),
  /** Time one image job may take (read, decode, encode, store) before it fails for good, in s. */
  IMAGE_JOB_TIMEOUT_SECONDS: int(1, 3600).default(60),
  /** Image jobs a worker runs at once; each holds at most one decoded image. */
  IMAGE_CONCURRENCY: int(1, 64).default(2),
  /** Port of the worker's GET /metrics (Prometheus); 0 turns the metrics server off. */
  WORKER_METRICS_PORT: port.default(9464),
  /** Interface of the worker's metrics server; loopback by default (0.0.0.0 in a container). */
  WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
});

function parse<S extends z.ZodType>(schema: S, env: Env): z.output<S> {
  // Empty strings mean "unset", as in most .env conventions.
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ''),
  );
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`),
    );
  }
  return result.data;
}

/** The port of a URL, with the scheme's default when none is written. */
function urlPort(url: string): number {
  const u = new URL(url);
  return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
}

export interface CommonConfig {
  storageDir: string;
  clusterSecret: string | undefined;
  logLevel: string;
  logFormat: 'auto' | 'json' | 'pretty';
  nodes: NodeAddress[];
  redisUrl: string;
  amqpUrl: string;
  clusterName: string;
  dbPath: string;
}

function commonOf(c: z.output<z.ZodObject<typeof common>>): CommonConfig {
  const storageDir = resolve(c.STORAGE_DIR);
  return {
    storageDir,
    clusterSecret: c.CLUSTER_SECRET,
    logLevel: c.LOG_LEVEL,
    logFormat: c.LOG_FORMAT,
    nodes: c.NODES,
    redisUrl: c.REDIS_URL,
    amqpUrl: c.AMQP_URL,
    clusterName: c.CLUSTER_NAME,
    dbPath: resolve(c.DB_PATH ?? `${storageDir}/trove.db`),
  };
}

export interface NodeConfig extends CommonConfig {
  id: string;
  host: string;
  port: number;
  dataDir: string;
  timeoutMs: number;
  scrubIntervalSeconds: number;
  scrubBytesPerSecond: number;
}

/** Reads the storage node's configuration; `--id <id>` in argv wins over NODE_ID. */
export function loadNodeConfig(env: Env, argv: string[] = []): NodeConfig {
  const idFlag = argv.indexOf('--id');
  const withId = idFlag >= 0 && argv[idFlag + 1] ? { ...env, NODE_ID: argv[idFlag + 1] } : env;
  const c = parse(nodeSchema, withId);
  const self = c.NODES.find((n) => n.id === c.NODE_ID);
  const port = c.NODE_PORT ?? (self ? urlPort(self.url) : undefined);
  if (port === undefined) {
    throw new ConfigError([
      `NODE_PORT: node "${c.NODE_ID}" is not in NODES, so NODE_PORT must be set`,
    ]);
  }
  const base = commonOf(c);
  return {
    ...base,
    id: c.NODE_ID,
    host: c.NODE_HOST,
    port,
    dataDir: resolve(c.NODE_DATA_DIR ?? `${base.storageDir}/${c.NODE_ID}`),
    timeoutMs: c.NODE_TIMEOUT_MS,
    scrubIntervalSeconds: c.SCRUB_INTERVAL_SECONDS,
    scrubBytesPerSecond: c.SCRUB_BYTES_PER_SECOND,
  };
}

export interface GatewayConfig extends CommonConfig {
  gatewayId: string;
  /** storage/run/<pidName>.pid: `gateway`, or the GATEWAY_ID when one is set (several gateways on a host). */
  pidName: string;
  host: string;
  port: number;
  replicationFactor: number;
  writeQuorum: number;
  maxUploadBytes: number;
  maxFilesPerUpload: number;
  allowedTypes: string[];
  maxInputPixels: number;
  processConcurrency: number;
  maxBatchFiles: number;
  maxBatchBytes: number;
  /** PROCESS_SPOOL_BYTES, with its default worked out. */
  processSpoolBytes: number;
  bodyTimeoutSeconds: number;
  /** BODY_MIN_RATE, in bytes per second. */
  bodyMinRate: number;
  defaultMaxDownloads: number;
  maxDownloadsLimit: number;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  publicUrl: string | undefined;
  trustProxy: boolean;
  uploadToken: string | undefined;
  /** METRICS_TOKEN: the Bearer token GET /metrics needs; undefined leaves it open. */
  metricsToken: string | undefined;
  /** ADMIN_TOKEN: the admin API's Bearer token; undefined turns the admin API off. */
  adminToken: string | undefined;
  nodeTimeoutMs: number;
  /** NODE_READ_CONNECTIONS: reads in flight to one node at most (gateway/download/read-order.ts). */
  nodeReadConnections: number;
  probeSchedule: string;
  offlineAfterFailures: number;
  pendingUploadTimeoutSeconds: number;
  rateLimits: RateLimitConfig;
}

/** Per-client request limits: each is a count per `windowSeconds`; 0 turns that one off. */
export interface RateLimitConfig {
  enabled: boolean;
  windowSeconds: number;
  uploads: number;
  downloads: number;
  misses: number;
}

/** Copies and quorum that the NODES can hold (the gateway and the worker both write). */
function replicationProblems(c: {
  NODES: NodeAddress[];
  REPLICATION_FACTOR: number;
  WRITE_QUORUM: number;
}): string[] {
  const problems: string[] = [];
  if (c.REPLICATION_FACTOR > c.NODES.length) {
    problems.push(
      `REPLICATION_FACTOR: ${c.REPLICATION_FACTOR} copies need at least as many NODES (have ${c.NODES.length})`,
    );
  }
  if (c.WRITE_QUORUM > c.REPLICATION_FACTOR) {
    problems.push(
      `WRITE_QUORUM: ${c.WRITE_QUORUM} is more than REPLICATION_FACTOR ${c.REPLICATION_FACTOR}`,
    );
  }
  return problems;
}

export function loadGatewayConfig(env: Env): GatewayConfig {
  const c = parse(gatewaySchema, env);
  const problems = replicationProblems(c);
  if (c.DEFAULT_TTL_SECONDS > c.MAX_TTL_SECONDS) {
    problems.push(
      `DEFAULT_TTL_SECONDS: ${c.DEFAULT_TTL_SECONDS} is more than MAX_TTL_SECONDS ${c.MAX_TTL_SECONDS}`,
    );
  }
  if (c.DEFAULT_MAX_DOWNLOADS > c.MAX_DOWNLOADS_LIMIT) {
    problems.push(
      `DEFAULT_MAX_DOWNLOADS: ${c.DEFAULT_MAX_DOWNLOADS} is more than MAX_DOWNLOADS_LIMIT ${c.MAX_DOWNLOADS_LIMIT}`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const base = commonOf(c);
  return {
    ...base,
    pidName: c.GATEWAY_ID ?? 'gateway',
    gatewayId:
      c.GATEWAY_ID ?? `gw-${hostname().replace(/[^A-Za-z0-9_-]/g, '')}-${c.PORT}`.slice(0, 64),
    host: c.HOST,
    port: c.PORT,
    replicationFactor: c.REPLICATION_FACTOR,
    writeQuorum: c.WRITE_QUORUM,
    maxUploadBytes: c.MAX_UPLOAD_BYTES,
    maxFilesPerUpload: c.MAX_FILES_PER_UPLOAD,
    allowedTypes: c.ALLOWED_TYPES,
    maxInputPixels: c.MAX_INPUT_PIXELS,
    processConcurrency: c.PROCESS_CONCURRENCY,
    maxBatchFiles: c.MAX_BATCH_FILES,
    maxBatchBytes: c.MAX_BATCH_BYTES,
    processSpoolBytes:
      c.PROCESS_SPOOL_BYTES ??
      c.PROCESS_CONCURRENCY * Math.max(c.MAX_UPLOAD_BYTES, c.MAX_BATCH_BYTES),
    bodyTimeoutSeconds: c.BODY_TIMEOUT_SECONDS,
    bodyMinRate: c.BODY_MIN_RATE,
    defaultMaxDownloads: c.DEFAULT_MAX_DOWNLOADS,
    maxDownloadsLimit: c.MAX_DOWNLOADS_LIMIT,
    defaultTtlSeconds: c.DEFAULT_TTL_SECONDS,
    maxTtlSeconds: c.MAX_TTL_SECONDS,
    publicUrl: c.PUBLIC_URL,
    trustProxy: c.TRUST_PROXY,
    uploadToken: c.UPLOAD_TOKEN,
    metricsToken: c.METRICS_TOKEN,
    adminToken: c.ADMIN_TOKEN,
    nodeTimeoutMs: c.NODE_TIMEOUT_MS,
    nodeReadConnections: c.NODE_READ_CONNECTIONS,
    probeSchedule: c.PROBE_SCHEDULE,
    offlineAfterFailures: c.OFFLINE_AFTER_FAILURES,
    pendingUploadTimeoutSeconds: c.PENDING_UPLOAD_TIMEOUT_SECONDS,
    rateLimits: {
      enabled: c.RATE_LIMITS,
      windowSeconds: c.RATE_LIMIT_WINDOW_SECONDS,
      uploads: c.RATE_LIMIT_UPLOADS,
      downloads: c.RATE_LIMIT_DOWNLOADS,
      misses: c.RATE_LIMIT_MISSES,
    },
  };
}

export interface WorkerConfig extends CommonConfig {
  workerId: string;
  prefetch: number;
  jobAttempts: number;
  deleteGraceMs: number;
  tombstoneRetentionMs: number;
  sweepSchedule: string;
  nodeTimeoutMs: number;
  repairSchedule: string;
  repairBytesPerSecond: number;
  orphanGraceMs: number;
  replicationFactor: number;
  writeQuorum: number;
  maxInputPixels: number;
  imageJobTimeoutMs: number;
  imageConcurrency: number;
  /** The metrics server's port; 0 = off. */
  metricsPort: number;
  metricsHost: string;
}

export function loadWorkerConfig(env: Env): WorkerConfig {
  const c = parse(workerSchema, env);
  const problems = replicationProblems(c);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ...commonOf(c),
    workerId:
      c.WORKER_ID ??
      `worker-${hostname().replace(/[^A-Za-z0-9_-]/g, '')}-${process.pid}`.slice(0, 64),
    prefetch: c.WORKER_PREFETCH,
    jobAttempts: c.JOB_ATTEMPTS,
    deleteGraceMs: c.DELETE_GRACE_SECONDS * 1000,
    tombstoneRetentionMs: c.TOMBSTONE_RETENTION_SECONDS * 1000,
    sweepSchedule: c.SWEEP_SCHEDULE,
    nodeTimeoutMs: c.NODE_TIMEOUT_MS,
    repairSchedule: c.REPAIR_SCHEDULE,
    repairBytesPerSecond: c.REPAIR_BYTES_PER_SECOND,
    orphanGraceMs: c.ORPHAN_GRACE_SECONDS * 1000,
    replicationFactor: c.REPLICATION_FACTOR,
    writeQuorum: c.WRITE_QUORUM,
    maxInputPixels: c.MAX_INPUT_PIXELS,
    imageJobTimeoutMs: c.IMAGE_JOB_TIMEOUT_SECONDS * 1000,
    imageConcurrency: c.IMAGE_CONCURRENCY,
    metricsPort: c.WORKER_METRICS_PORT,
    metricsHost: c.WORKER_METRICS_HOST,
  };
}

/** What `npm start` needs to lay out the local cluster. */
export function loadCommonConfig(env: Env): CommonConfig {
  return commonOf(parse(z.object(common), env));
}

/** Loads `.env` from the working directory when present (Node's own parser). */
export function loadDotEnv(file = '.env'): void {
  try {
    process.loadEnvFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

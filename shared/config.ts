/**
 * Configuration, parsed and validated once at start-up. Nothing else in the
 * project reads `process.env`: each service's `run.ts` calls a loader here and passes
 * the typed result down. A bad value throws a ConfigError that names every
 * offending variable, and the process stops before listening.
 *
 * Each setting is one zod field keyed by its variable; its typed value is what
 * the schema outputs, under the variable's name in camelCase
 * (MAX_UPLOAD_BYTES → `maxUploadBytes`). The gateway's settings are grouped in
 * sections (`config.uploads.maxUploadBytes`), and its handlers are handed the
 * sections they read: a new setting is one line in a section, plus its use.
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

const isAmqpUrl = (s: string) => /^amqps?:\/\//.test(s) && URL.canParse(s);

const amqpUrl = z.string().refine(isAmqpUrl, { message: 'expected amqp://user:pass@host:port' });

/** "amqp://a:5672,amqp://b:5672" → the URLs, in order. */
const amqpUrlList = z.string().transform((text, ctx) => {
  const urls = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const url of urls) {
    if (!isAmqpUrl(url)) {
      // Named without its credentials: a config error may end up in a shared log.
      ctx.addIssue({
        code: 'custom',
        message: `"${withoutCredentials(url)}" is not amqp(s)://user:pass@host:port`,
      });
      return z.NEVER;
    }
  }
  if (urls.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'expected one or more amqp:// URLs, comma-separated' });
    return z.NEVER;
  }
  return urls;
});

/** A URL as it may be shown (logs, errors): without its user and password. */
export function withoutCredentials(url: string): string {
  if (!URL.canParse(url)) return url.replace(/\/\/[^@/]*@/, '//');
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString();
}

/** A Redis Sentinel's address. */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** "10.0.0.1:26379,redis-b:26379,[::1]:26379" → [{host,port}]. */
const sentinelList = z.string().transform((text, ctx) => {
  const sentinels: SentinelAddress[] = [];
  for (const entry of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `"${entry}" is not host:port` });
      return z.NEVER;
    }
    const host = match[1]!.replace(/^\[|\]$/g, '');
    if (sentinels.some((s) => s.host === host && s.port === port)) {
      ctx.addIssue({ code: 'custom', message: `sentinel "${entry}" appears twice` });
      return z.NEVER;
    }
    sentinels.push({ host, port });
  }
  if (sentinels.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'expected host:port,host:port' });
    return z.NEVER;
  }
  return sentinels;
});

export const DEFAULT_NODES =
  'node1=http://127.0.0.1:9001,node2=http://127.0.0.1:9002,node3=http://127.0.0.1:9003';

/** A group of settings: zod fields keyed by their variables. */
type Fields = Record<string, z.ZodType>;

/** MAX_UPLOAD_BYTES → maxUploadBytes: in code, a setting goes by its variable's name. */
type Camel<S extends string> = S extends `${infer Word}_${infer Rest}`
  ? `${Lowercase<Word>}${Capitalize<Camel<Rest>>}`
  : Lowercase<S>;

/** What `fields` parse to, each under its camelCase name. */
type Settings<F extends Fields> = { [K in keyof F & string as Camel<K>]: z.output<F[K]> };

function camel(variable: string): string {
  return variable.toLowerCase().replace(/_(.)/g, (_, letter: string) => letter.toUpperCase());
}

function settings<F extends Fields>(fields: F, values: Record<string, unknown>): Settings<F> {
  return Object.fromEntries(
    Object.keys(fields).map((variable) => [camel(variable), values[variable]]),
  ) as Settings<F>;
}

/**
 * A schema of the whole (flat) environment: `top`'s settings at the top level,
 * each section's under the section's name. Every variable is checked, and all
 * the bad ones are named, before anything is returned.
 */
function envSchema<T extends Fields, S extends Record<string, Fields> = {}>(
  top: T,
  sections: S = {} as S,
) {
  const fields: Fields = Object.assign({}, top, ...Object.values(sections));
  return z.object(fields).transform((values) => ({
    ...settings(top, values),
    ...(Object.fromEntries(
      Object.entries(sections).map(([name, section]) => [name, settings(section, values)]),
    ) as { [N in keyof S]: Settings<S[N]> }),
  }));
}

/** A problem found across variables, named after `variable` like any other. */
function problem(ctx: z.RefinementCtx, variable: string, message: string): void {
  ctx.addIssue({ code: 'custom', path: [variable], message });
}

const common = {
  /** Root of runtime data: node disks, the metadata database, pid files, the secret. */
  STORAGE_DIR: z.string().min(1).default('storage'),
  /** Shared secret of the cluster; generated into STORAGE_DIR/cluster.secret when unset. */
  CLUSTER_SECRET: z.string().min(16, 'use at least 16 characters').optional(),
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `json` lines, `pretty` (human-readable) lines, or `auto`: pretty on a terminal, JSON otherwise. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** The storage nodes of the cluster's first layout, as id=url pairs (later changes: `npm run cluster`). */
  NODES: nodeList.prefault(DEFAULT_NODES),
  /** How often a gateway or worker looks for a new layout version in the metadata store, in ms. */
  LAYOUT_POLL_MS: int(100, 60_000).default(2000),
  /** Redis, for download counters, locks and shared node health. */
  REDIS_URL: z
    .string()
    .refine((s) => /^rediss?:\/\//.test(s) && URL.canParse(s), {
      message: 'expected redis://host:port',
    })
    .default('redis://127.0.0.1:6379'),
  /** Redis Sentinels as host:port,host:port; when set, Redis is the master they name (REDIS_URL gives only its password and db). */
  REDIS_SENTINELS: sentinelList.optional(),
  /** The master group the sentinels watch (their `sentinel monitor <name> …`); only with REDIS_SENTINELS. */
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'use 1-100 of [A-Za-z0-9._-]')
    .optional(),
  /** RabbitMQ, for background jobs. */
  AMQP_URL: amqpUrl.default('amqp://guest:guest@127.0.0.1:5672'),
  /** RabbitMQ nodes of one cluster, comma-separated, tried in turn on every (re)connect; AMQP_URL alone when unset. */
  AMQP_URLS: amqpUrlList.optional(),
  /** `classic` queues (one broker), or `quorum` queues (replicated over a RabbitMQ cluster); see docs/jobs.md before switching. */
  AMQP_QUEUE_TYPE: z.enum(['classic', 'quorum']).default('classic'),
  /** Names this cluster's RabbitMQ queues and shared Redis state, so several clusters can share both servers. */
  CLUSTER_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,40}$/, 'use 1-40 of [A-Za-z0-9_-]')
    .default('trove'),
  /** SQLite metadata file (gateways and workers on one host share it); defaults to STORAGE_DIR/trove.db. */
  DB_PATH: z.string().min(1).optional(),
  /**
   * PostgreSQL metadata (`postgres://user:pass@host:5432/db`), for gateways and
   * workers on several hosts; replaces DB_PATH when set.
   */
  DATABASE_URL: z
    .string()
    .refine((s) => /^postgres(ql)?:\/\//.test(s) && URL.canParse(s), {
      message: 'expected postgres://user:pass@host:port/database',
    })
    .optional(),
  /** Connections each process keeps to PostgreSQL (DATABASE_URL). */
  DATABASE_POOL_SIZE: int(1, 200).default(10),
};

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

/** STORAGE_DIR made absolute, and DB_PATH with its default (STORAGE_DIR/trove.db). */
function withPaths<C extends { storageDir: string; dbPath: string | undefined }>(c: C) {
  const storageDir = resolve(c.storageDir);
  return { ...c, storageDir, dbPath: resolve(c.dbPath ?? `${storageDir}/trove.db`) };
}

/** AMQP_URLS with its default: AMQP_URL alone. */
function withAmqpUrls<C extends { amqpUrl: string; amqpUrls: string[] | undefined }>(c: C) {
  return { ...c, amqpUrls: c.amqpUrls ?? [c.amqpUrl] };
}

/** How to reach Redis: REDIS_URL alone, or the master that REDIS_SENTINELS name. */
export interface RedisConnection {
  /** REDIS_URL: the server itself, or with sentinels only its user, password and db. */
  url: string;
  /** REDIS_SENTINELS, when set. */
  sentinels: SentinelAddress[] | undefined;
  /** REDIS_SENTINEL_NAME, `mymaster` by default. */
  sentinelName: string;
}

/** The Redis settings that only make sense together. */
function checkRedisSettings(
  ctx: z.RefinementCtx,
  c: { redisUrl: string; redisSentinels?: SentinelAddress[]; redisSentinelName?: string },
): void {
  if (c.redisSentinelName !== undefined && c.redisSentinels === undefined) {
    problem(ctx, 'REDIS_SENTINEL_NAME', 'set REDIS_SENTINELS too, or unset it');
  }
  if (c.redisSentinels !== undefined && c.redisUrl.startsWith('rediss:')) {
    // Not silently dropped to plain TCP: TLS through sentinels is not wired up.
    problem(ctx, 'REDIS_URL', 'rediss:// (TLS) is not supported with REDIS_SENTINELS');
  }
}

/** The Redis settings as one connection option (shared/redis.ts `createRedis`). */
function withRedis<
  C extends { redisUrl: string; redisSentinels?: SentinelAddress[]; redisSentinelName?: string },
>(c: C): C & { redisConnection: RedisConnection } {
  return {
    ...c,
    redisConnection: {
      url: c.redisUrl,
      sentinels: c.redisSentinels,
      sentinelName: c.redisSentinelName ?? 'mymaster',
    },
  };
}

/** `<prefix>-<host>-<suffix>`: a default name of a process, unique enough on one machine. */
function defaultName(prefix: string, suffix: number): string {
  return `${prefix}-${hostname().replace(/[^A-Za-z0-9_-]/g, '')}-${suffix}`.slice(0, 64);
}

/** Copies and quorum that the NODES can hold (the gateway and the worker both write). */
function checkReplication(
  ctx: z.RefinementCtx,
  c: { nodes: NodeAddress[]; replicationFactor: number; writeQuorum: number },
): void {
  if (c.replicationFactor > c.nodes.length) {
    problem(
      ctx,
      'REPLICATION_FACTOR',
      `${c.replicationFactor} copies need at least as many NODES (have ${c.nodes.length})`,
    );
  }
  if (c.writeQuorum > c.replicationFactor) {
    problem(
      ctx,
      'WRITE_QUORUM',
      `${c.writeQuorum} is more than REPLICATION_FACTOR ${c.replicationFactor}`,
    );
  }
}

const commonSchema = envSchema(common).transform((c, ctx) => {
  checkRedisSettings(ctx, c);
  return withRedis(withAmqpUrls(withPaths(c)));
});

export type CommonConfig = z.output<typeof commonSchema>;

/** What `npm start` needs to lay out the local cluster. */
export function loadCommonConfig(env: Env): CommonConfig {
  return parse(commonSchema, env);
}

const nodeSchema = envSchema({
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
}).transform((c, ctx) => {
  // Runs once every variable is valid; NODE_PORT and NODE_DATA_DIR get their defaults.
  const self = c.nodes.find((n) => n.id === c.nodeId);
  const nodePort = c.nodePort ?? (self ? urlPort(self.url) : undefined);
  if (nodePort === undefined) {
    problem(ctx, 'NODE_PORT', `node "${c.nodeId}" is not in NODES, so NODE_PORT must be set`);
    return z.NEVER;
  }
  const paths = withPaths(c);
  return {
    ...paths,
    nodePort,
    nodeDataDir: resolve(c.nodeDataDir ?? `${paths.storageDir}/${c.nodeId}`),
  };
});

export type NodeConfig = z.output<typeof nodeSchema>;

/** Reads the storage node's configuration; `--id <id>` in argv wins over NODE_ID. */
export function loadNodeConfig(env: Env, argv: string[] = []): NodeConfig {
  const idFlag = argv.indexOf('--id');
  const withId = idFlag >= 0 && argv[idFlag + 1] ? { ...env, NODE_ID: argv[idFlag + 1] } : env;
  return parse(nodeSchema, withId);
}

const gatewaySchema = envSchema(common, {
  server: {
    HOST: z.string().min(1).default('0.0.0.0'),
    PORT: port.default(8080),
    /** Stable name of this gateway; pending uploads are tagged with it for crash cleanup. */
    GATEWAY_ID: nodeId.optional(),
  },
  replication: {
    /** Copies kept of every object. */
    REPLICATION_FACTOR: int(1, 16).default(3),
    /** Copies that must be fsynced, with the right sha256, before an upload is answered 201. */
    WRITE_QUORUM: int(1, 16).default(2),
  },
  uploads: {
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
          list.length > 0 &&
          list.every((t) => /^[a-z0-9.+-]+\/(\*|[a-z0-9.+-]+)$|^\*\/\*$/.test(t)),
        {
          message: 'expected MIME patterns such as image/*,application/pdf',
        },
      ),
    /** Uploads still pending after this many seconds are treated as abandoned and cleaned up. */
    PENDING_UPLOAD_TIMEOUT_SECONDS: int(60).default(6 * 3600),
    /** Memory all uploads of a gateway may use together for their replay copies (1 MiB each at most; the rest goes to spool files); 0 = files only. */
    UPLOAD_SPOOL_MEMORY: bytes.or(z.literal('0').transform(() => 0)).default(64 * 1024 ** 2),
  },
  resumable: {
    /** An incomplete resumable (tus) upload is removed this long after it was created, in seconds (its Upload-Expires). */
    RESUMABLE_UPLOAD_EXPIRY_SECONDS: int(1).default(86400),
    /** Incomplete resumable uploads one client (address) may hold at once; one more is refused with 429. */
    RESUMABLE_UPLOADS_PER_CLIENT: int(1, 1_000_000).default(20),
    /** Bytes one client's incomplete resumable uploads may reserve together (their Upload-Length); beyond, 429. */
    RESUMABLE_BYTES_PER_CLIENT: bytes.default(8 * 1024 ** 3),
    /** The page uploads a file larger than this through tus (resumable); smaller ones in one request. */
    RESUMABLE_THRESHOLD_BYTES: bytes.default(8 * 1024 ** 2),
    /** The size of each request (PATCH) of the page's resumable uploads. */
    RESUMABLE_CHUNK_BYTES: bytes.default(8 * 1024 ** 2),
  },
  downloads: {
    /** Memory for the gateway's cache of small blobs (1 MiB or less) it has read and verified, served again without a node hop; 0 = off. */
    DOWNLOAD_CACHE_BYTES: bytes.or(z.literal('0').transform(() => 0)).default(32 * 1024 ** 2),
    /** Lifetime of a resume grant (gateway/download/resume-grants.ts), renewed by each resume it serves; 0 = no grants, every resume counts. */
    DOWNLOAD_GRANT_TTL_SECONDS: int(0, 30 * 24 * 3600).default(1800),
  },
  limits: {
    /** Downloads a share link allows when the upload does not say. */
    DEFAULT_MAX_DOWNLOADS: int(0, 1_000_000).default(3),
    /** Highest max_downloads an upload may ask for. */
    MAX_DOWNLOADS_LIMIT: int(1, Number.MAX_SAFE_INTEGER).default(1_000_000),
    /** Lifetime of an upload when it does not say, in seconds. */
    DEFAULT_TTL_SECONDS: int(1).default(3600),
    /** Longest lifetime an upload may ask for, in seconds. */
    MAX_TTL_SECONDS: int(1).default(7 * 24 * 3600),
  },
  processing: {
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
  },
  urls: {
    /** Base of absolute links (e.g. https://abc.ngrok.app); else derived from the request. */
    PUBLIC_URL: z
      .string()
      .refine((s) => URL.canParse(s) && /^https?:/.test(s), { message: 'expected an http(s) URL' })
      .transform((s) => s.replace(/\/+$/, ''))
      .optional(),
    /** Honour X-Forwarded-Proto/Host (behind ngrok or nginx). */
    TRUST_PROXY: bool.default(false),
  },
  auth: {
    /** When set, uploads and processing need `Authorization: Bearer <token>` (set it before going public). */
    UPLOAD_TOKEN: z.string().min(8, 'use at least 8 characters').optional(),
    /** When set, GET /metrics needs `Authorization: Bearer <token>`; open when unset (docs/metrics.md). */
    METRICS_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
    /** When set, turns on the admin API (/admin/*), which needs `Authorization: Bearer <token>`; off when unset. */
    ADMIN_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  },
  s3: {
    /** Port of the S3-compatible API (docs/s3.md); unset: the S3 API is off. */
    S3_PORT: int(1, 65535).optional(),
    /** Interface the S3 API listens on; the gateway's own HOST when unset. */
    S3_HOST: z.string().min(1).optional(),
    /** The one region the S3 API answers for: clients must sign with it. */
    S3_REGION: z
      .string()
      .regex(/^[a-z0-9-]{1,32}$/, 'expected a region name such as us-east-1')
      .default('us-east-1'),
    /**
     * A CompleteMultipartUpload not answered within this many ms answers 200 at once and
     * sends a space every as many ms until its document (or an <Error>) follows, as S3 does.
     */
    S3_COMPLETE_KEEPALIVE_MS: int(1, 600_000).default(5000),
    /** Domain of virtual-host style requests (`<bucket>.<S3_DOMAIN>`); path style only when unset. */
    S3_DOMAIN: z
      .string()
      .regex(/^[A-Za-z0-9.-]{1,253}$/, 'expected a domain name such as s3.example.com')
      .transform((s) => s.toLowerCase().replace(/\.$/, ''))
      .optional(),
  },
  storageNodes: {
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
  },
  rateLimits: {
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
  },
}).transform((c, ctx) => {
  // Runs once every variable is valid: checks across variables, then the derived values.
  checkReplication(ctx, { nodes: c.nodes, ...c.replication });
  checkRedisSettings(ctx, c);
  const { limits, server, processing } = c;
  if (limits.defaultTtlSeconds > limits.maxTtlSeconds) {
    problem(
      ctx,
      'DEFAULT_TTL_SECONDS',
      `${limits.defaultTtlSeconds} is more than MAX_TTL_SECONDS ${limits.maxTtlSeconds}`,
    );
  }
  if (c.s3.s3Port !== undefined && c.s3.s3Port === server.port) {
    problem(ctx, 'S3_PORT', `${c.s3.s3Port} is the gateway's PORT too; pick another port`);
  }
  if (limits.defaultMaxDownloads > limits.maxDownloadsLimit) {
    problem(
      ctx,
      'DEFAULT_MAX_DOWNLOADS',
      `${limits.defaultMaxDownloads} is more than MAX_DOWNLOADS_LIMIT ${limits.maxDownloadsLimit}`,
    );
  }
  return {
    ...withRedis(withAmqpUrls(withPaths(c))),
    s3: { ...c.s3, s3Host: c.s3.s3Host ?? server.host },
    server: {
      ...server,
      gatewayId: server.gatewayId ?? defaultName('gw', server.port),
      /** storage/run/<pidName>.pid: `gateway`, or the GATEWAY_ID when one is set (several gateways on a host). */
      pidName: server.gatewayId ?? 'gateway',
    },
    processing: {
      ...processing,
      // What PROCESS_CONCURRENCY requests could spool if each held its slot from its first byte.
      processSpoolBytes:
        processing.processSpoolBytes ??
        processing.processConcurrency *
          Math.max(c.uploads.maxUploadBytes, processing.maxBatchBytes),
    },
  };
});

/** The gateway's settings: the common ones at the top, the rest by section (`config.uploads`, `config.limits`, …). */
export type GatewayConfig = z.output<typeof gatewaySchema>;

export function loadGatewayConfig(env: Env): GatewayConfig {
  return parse(gatewaySchema, env);
}

const workerSchema = envSchema({
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
  /** Bandwidth the rebalance (moving replicas to where the layout places them) may use (0 = unlimited). */
  REBALANCE_BYTES_PER_SECOND: bytes.or(z.literal('0').transform(() => 0)).default(50e6),
  /** Replicas the rebalance may move per second (0 = unlimited). */
  REBALANCE_OBJECTS_PER_SECOND: int(0).default(100),
  /** Files the rebalance places at once (each move waits on several nodes in turn). */
  REBALANCE_CONCURRENCY: int(1, 64).default(4),
  /** node-cron schedule of a full rebalance pass besides the one each new layout version starts. */
  REBALANCE_SCHEDULE: z
    .string()
    .default('30 */10 * * * *')
    .refine((s) => cron.validate(s), { message: 'not a cron expression, e.g. 30 */10 * * * *' }),
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
}).transform((c, ctx) => {
  // Runs once every variable is valid; durations become ms, the unit the worker uses.
  checkReplication(ctx, c);
  checkRedisSettings(ctx, c);
  const {
    deleteGraceSeconds,
    tombstoneRetentionSeconds,
    orphanGraceSeconds,
    imageJobTimeoutSeconds,
    ...rest
  } = withRedis(withAmqpUrls(withPaths(c)));
  return {
    ...rest,
    workerId: c.workerId ?? defaultName('worker', process.pid),
    deleteGraceMs: deleteGraceSeconds * 1000,
    tombstoneRetentionMs: tombstoneRetentionSeconds * 1000,
    orphanGraceMs: orphanGraceSeconds * 1000,
    imageJobTimeoutMs: imageJobTimeoutSeconds * 1000,
  };
});

export type WorkerConfig = z.output<typeof workerSchema>;

export function loadWorkerConfig(env: Env): WorkerConfig {
  return parse(workerSchema, env);
}

/** Loads `.env` from the working directory when present (Node's own parser). */
export function loadDotEnv(file = '.env'): void {
  try {
    process.loadEnvFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Command-line flags of `npm run bench`. */
import { parseFlags, UsageError } from '../cli-flags.js';
import { DEFAULT_GATEWAY } from './cluster.js';

export interface BenchOptions {
  /** Base URL of the Trove gateway under test. */
  gateway: string;
  /** Seconds of each measured small-object run. */
  durationS: number;
  /** Seconds of load before each measured run, not counted. */
  warmupS: number;
  /** Size of the large object, in bytes. */
  largeBytes: number;
  /** Timed repetitions of each large transfer; the median is reported. */
  largeRounds: number;
  /** Measured runs of each side of a paired small-object figure (the S3 suite's); the median is reported. */
  smallRounds: number;
  /** Files pre-uploaded for the small-download runs. */
  downloadSet: number;
  /** Concurrency levels of the small-object runs. */
  connections: number[];
  runSmall: boolean;
  runCounter: boolean;
  runLarge: boolean;
  /** The large file through tus (tus-js-client, 8 MiB chunks) beside one PUT of it. */
  runResumable: boolean;
  /** POST /process images/s beside the same sharp pipeline in-process. */
  runProcess: boolean;
  /** Thumbnails/s of the worker path beside vipsthumbnail on the same photos. */
  runThumbnails: boolean;
  /** Two gateways behind nginx vs one direct (against npm run start:lb), only on request. */
  runLb: boolean;
  /** The repair suite: destructive (kills and wipes a node), so only on request. */
  runRepair: boolean;
  /** The rebalance suite: adds a fourth node to the layout and takes it out again, so only on request. */
  runRebalance: boolean;
  /** Minutes of mixed traffic between two resting RSS figures, only on request. */
  runMemory: boolean;
  /** 64 KiB PUT and counted GETs on a SQLite gateway beside a PostgreSQL one. */
  runMetadata: boolean;
  /** 64 KiB and large PUT/GET through the S3 port beside the native API, only on request. */
  runS3: boolean;
  /** The S3 port's URL (--s3); unset: the gateway's host with S3_PORT. */
  s3: string | undefined;
  /** PostgreSQL server (any database) where the metadata suite creates, then drops, its database. */
  postgresUrl: string;
  /** Storage node the repair suite kills, wipes and restarts. */
  repairNode: string;
  quick: boolean;
}

/** Where the metadata suite creates its database: the local server's maintenance database. */
const DEFAULT_POSTGRES = 'postgres://postgres@127.0.0.1:5432/postgres';

export const USAGE = `usage: npm run bench -- [--gateway <url>] [--duration <s>] [--quick] [--large-mib <n>] [--only small|counter|metadata|large|resumable|process|thumbnails|lb|repair|rebalance|memory|s3] [--node <id>] [--postgres <url>] [--s3 <url>]

  --gateway <url>   Trove gateway to measure (default ${DEFAULT_GATEWAY})
  --duration <s>    seconds per 64 KiB and counter run (default 10; 3 with --quick)
  --quick           3 s runs and a 64 MiB large file instead of 256 MiB
  --large-mib <n>   size of the large file in MiB (default 256; 64 with --quick), e.g. 1024
                    to show that no process's memory follows the size of a transfer
  --only <what>     small (64 KiB requests/s), counter (what download counting costs),
                    metadata (64 KiB PUT and counted GETs with SQLite vs PostgreSQL metadata,
                    on two gateways the bench starts; skipped when --postgres does not answer),
                    large (256 MiB MB/s, and each process's RSS at rest and at its peak), resumable
                    (the same file through tus in 8 MiB chunks with tus-js-client, beside one PUT
                    of it, in the same rounds), process (/process thumbnails/s at 4
                    and 16 connections, beside sharp in-process), thumbnails (thumbnails/s of the
                    worker on 20 photos of 2-4 MP, beside vipsthumbnail), lb (nginx and two
                    gateways vs one gateway direct, and a rate ladder; needs npm run start:lb;
                    never part of the default run), repair (restoring a wiped node: kills,
                    wipes and restarts a storage node; never part of the default run),
                    rebalance (moving replicas onto a fourth node added to the layout, then
                    draining and removing it; never part of the default run),
                    memory (12 × --duration of mixed traffic, uploads refused with 413 included
                    when MAX_UPLOAD_BYTES is at most 256 MiB, and each process's RSS at rest
                    before and after it and at its peak; never part of the default run), or
                    s3 (64 KiB PUT/GET req/s and the large file's PUT/GET MB/s through the S3
                    port beside PUT /upload and GET /download/:id; needs the cluster started
                    with S3_PORT and ADMIN_TOKEN, and both in the bench's environment too;
                    never part of the default run)
  --node <id>       the node --only repair kills and wipes (default node3)
  --postgres <url>  PostgreSQL server where the metadata suite creates a database for the run
                    and drops it after (default ${DEFAULT_POSTGRES})
  --s3 <url>        the S3 port --only s3 measures (default: the gateway's host, port S3_PORT)

Run the cluster first (npm start), with the same STORAGE_DIR, in another terminal.`;

export { UsageError };

const MIB = 1024 * 1024;

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const values = parseFlags(argv, {
    gateway: { type: 'string', default: DEFAULT_GATEWAY },
    duration: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'large-mib': { type: 'string' },
    only: { type: 'string' },
    node: { type: 'string' },
    postgres: { type: 'string', default: DEFAULT_POSTGRES },
    s3: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';

  const gateway = values.gateway.replace(/\/+$/, '');
  if (!URL.canParse(gateway) || !/^https?:/.test(gateway)) {
    throw new UsageError(`--gateway: "${values.gateway}" is not an http(s) URL`);
  }
  const durationS =
    values.duration === undefined ? (values.quick ? 3 : 10) : Number(values.duration);
  if (!Number.isFinite(durationS) || durationS < 1 || durationS > 3600) {
    throw new UsageError(
      `--duration: "${values.duration}" is not a number of seconds from 1 to 3600`,
    );
  }
  const largeMib =
    values['large-mib'] === undefined ? (values.quick ? 64 : 256) : Number(values['large-mib']);
  if (!Number.isInteger(largeMib) || largeMib < 1 || largeMib > 65536) {
    throw new UsageError(
      `--large-mib: "${values['large-mib']}" is not a whole number of MiB from 1 to 65536`,
    );
  }
  const suites = [
    'small',
    'counter',
    'metadata',
    'large',
    'resumable',
    'process',
    'thumbnails',
    'lb',
    'repair',
    'rebalance',
    'memory',
    's3',
  ];
  if (values.only !== undefined && !suites.includes(values.only)) {
    throw new UsageError(`--only: expected ${suites.join(', ')}, got "${values.only}"`);
  }
  const run = (suite: string) => values.only === undefined || values.only === suite;
  if (values.node !== undefined && values.only !== 'repair') {
    throw new UsageError('--node only applies to --only repair');
  }
  if (values.s3 !== undefined && (!URL.canParse(values.s3) || !/^https?:/.test(values.s3))) {
    throw new UsageError(`--s3: "${values.s3}" is not an http(s) URL`);
  }
  if (!/^postgres(ql)?:\/\//.test(values.postgres) || !URL.canParse(values.postgres)) {
    throw new UsageError(`--postgres: "${values.postgres}" is not a postgres:// URL`);
  }
  return {
    gateway,
    durationS,
    // Long enough to open every connection and get past JIT and cold caches, short enough not to matter.
    warmupS: Math.max(1, Math.min(3, Math.round(durationS / 5))),
    largeBytes: largeMib * MIB,
    largeRounds: values.quick ? 3 : 5,
    smallRounds: values.quick ? 1 : 3,
    downloadSet: 200,
    connections: [16, 64],
    runSmall: run('small'),
    runCounter: run('counter'),
    runLarge: run('large'),
    runResumable: run('resumable'),
    runProcess: run('process'),
    runThumbnails: run('thumbnails'),
    // Needs npm run start:lb (nginx and two gateways), so only when asked by name.
    runLb: values.only === 'lb',
    // Destructive and slow: it kills a node, so never without being asked by name.
    runRepair: values.only === 'repair',
    // Changes the layout twice and starts a node of its own: by name only.
    runRebalance: values.only === 'rebalance',
    // Minutes long, and most telling on a cluster with a small MAX_UPLOAD_BYTES: by name only.
    runMemory: values.only === 'memory',
    runMetadata: run('metadata'),
    // Needs S3_PORT and ADMIN_TOKEN on both sides: by name only.
    runS3: values.only === 's3',
    s3: values.s3?.replace(/\/+$/, ''),
    postgresUrl: values.postgres,
    repairNode: values.node ?? 'node3',
    quick: values.quick,
  };
}

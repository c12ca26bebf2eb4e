/**
 * `npm run bench`: Trove measured beside references doing the same work on
 * the same machine in the same run (a private nginx, and three fsynced files
 * on the same disk), against a cluster already running (`npm start`).
 * See docs/benchmarks.md for what each figure means and how to read it.
 *
 * Exit code: 0 when every request succeeded and every byte checked out, even
 * if a target ratio is missed (the table says so); 1 on failed requests or
 * wrong bytes; 2 when the cluster is not reachable or a flag is wrong.
 */
import { rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { Agent, type Dispatcher } from 'undici';
import { ConfigError } from '../shared/config.js';
import {
  ClusterUnavailableError,
  inspectCluster,
  storageDirFromEnv,
  type ClusterView,
} from './bench/cluster.js';
import { findExecutable, progress, type BenchContext } from './bench/context.js';
import { runCounterSuite, type CounterResults } from './bench/counter-suite.js';
import { runLargeSuite, type LargeResults } from './bench/large-suite.js';
import { runMetadataSuite, type MetadataResults } from './bench/metadata-suite.js';
import { startNginx, type Nginx } from './bench/nginx.js';
import { USAGE, UsageError, parseOptions, type BenchOptions } from './bench/options.js';
import { restingRss, runMemoryNote } from './bench/memory.js';
import { runMemorySuite, type MemoryResults } from './bench/memory-suite.js';
import { RssSampler, isAlive, processState } from './bench/procfs.js';
import { runRebalanceSuite, type RebalanceResults } from './bench/rebalance-suite.js';
import { runRepairSuite, type RepairResults } from './bench/repair-suite.js';
import { runResumableSuite, type ResumableResults } from './bench/resumable-suite.js';
import { runLbSuite, type LbResults } from './bench/lb-suite.js';
import { runProcessSuite, type ProcessResults } from './bench/process-suite.js';
import { runThumbnailSuite, type ThumbnailResults } from './bench/thumbnail-suite.js';
import { buildRows, machineInfo, printReport, writeResults } from './bench/report.js';
import { runSmallSuite, type SmallResults } from './bench/small-suite.js';
import { runS3Suite, type S3Results } from './bench/s3-suite.js';

/** Everything that must not outlive the bench, whichever way it ends. */
const leftovers = {
  nginx: undefined as Nginx | undefined,
  scratch: undefined as string | undefined,
  done: false,
};

async function cleanUp(): Promise<void> {
  if (leftovers.done) return;
  leftovers.done = true;
  await leftovers.nginx?.stop().catch(() => leftovers.nginx?.killSync());
  if (leftovers.scratch) await rm(leftovers.scratch, { recursive: true, force: true });
}

process.once('exit', () => {
  if (leftovers.done) return;
  leftovers.nginx?.killSync();
  if (leftovers.scratch) rmSync(leftovers.scratch, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping nginx and removing temp files…`);
    void cleanUp().finally(() => process.exit(130));
  });
}

function parseFlags(): BenchOptions | number {
  try {
    const parsed = parseOptions(process.argv.slice(2));
    if (parsed !== 'help') return parsed;
    console.log(USAGE);
    return 0;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`bench: ${err.message}\n\n${USAGE}`);
    return 2;
  }
}

function deviceOf(path: string): number | undefined {
  try {
    return statSync(path).dev;
  } catch {
    return undefined;
  }
}

/** Scratch space and the nginx reference; `nginxMissing` says why there is none. */
async function prepare(
  opts: BenchOptions,
  cluster: ClusterView,
  dispatcher: Dispatcher,
): Promise<{ ctx: BenchContext; nginxMissing: string | undefined }> {
  const notes = [...cluster.warnings, workerNote(cluster)];
  const scratch = await mkdtemp(join(os.tmpdir(), 'trove-bench-'));
  leftovers.scratch = scratch;
  const www = join(scratch, 'www');
  await mkdir(join(www, 'dav'), { recursive: true });
  await mkdir(join(scratch, 'fsync'));
  const storageDev = deviceOf(cluster.storageDir);
  if (storageDev !== undefined && storageDev !== deviceOf(scratch)) {
    notes.push(
      `${os.tmpdir()} is not on STORAGE_DIR's file system: the disk reference uses another disk`,
    );
  }

  let nginxMissing: string | undefined;
  const binary = findExecutable('nginx');
  if (!binary) nginxMissing = 'nginx is not installed (e.g. apt-get install nginx)';
  else {
    try {
      leftovers.nginx = await startNginx(binary, join(scratch, 'nginx'), www, dispatcher);
    } catch (err) {
      nginxMissing = (err as Error).message;
    }
  }
  if (nginxMissing) notes.push(`nginx comparisons skipped: ${nginxMissing}`);

  const gatewayUrl = new URL(opts.gateway);
  const ctx: BenchContext = {
    opts,
    dispatcher,
    trove: {
      origin: gatewayUrl.origin,
      prefix: gatewayUrl.pathname.replace(/\/+$/, ''),
      // The request path's CPU: the worker's is the thumbnail suite's business.
      pids: () =>
        cluster.processes
          .filter((p) => p.name !== 'worker')
          .map((p) => p.pid)
          .filter(isAlive),
      processes: () => cluster.processes.filter((p) => isAlive(p.pid)),
    },
    nginx: leftovers.nginx,
    www,
    scratch: join(scratch, 'fsync'),
    sampler: new RssSampler(cluster.processes, 50),
    failures: [],
    notes,
  };
  return { ctx, nginxMissing };
}

/** Whether the figures include the worker's work: it may be paused (SIGSTOP) to measure the request path alone. */
function workerNote(cluster: ClusterView): string {
  const worker = cluster.processes.find((p) => p.name === 'worker');
  if (!worker) return 'worker: not found, so its CPU is not counted';
  return processState(worker.pid) === 'T'
    ? `worker (pid ${worker.pid}) is paused (SIGSTOP): the figures are the request path alone`
    : `worker (pid ${worker.pid}) is running: its CPU counts in every "server" figure`;
}

/**
 * The repair suite killed a node and started a new one: watch the new pid
 * (RSS, the liveness check at the end), and tell the user it now runs on its
 * own, outside `npm start`.
 */
function adoptRestarted(cluster: ClusterView, repair: RepairResults, notes: string[]): void {
  const restarted = repair.restarted;
  if (!restarted) return;
  const watched = cluster.processes.find((p) => p.name === repair.node);
  if (watched) watched.pid = restarted.pid;
  notes.push(
    `repair: ${repair.node} was killed, wiped and restarted on its own (pid ${restarted.pid}, log ${restarted.log}); ` +
      `npm start no longer stops it: kill $(cat ${cluster.storageDir}/run/${repair.node}.pid)`,
  );
}

async function main(): Promise<number> {
  const opts = parseFlags();
  if (typeof opts === 'number') return opts;
  let storageDir: string;
  try {
    storageDir = storageDirFromEnv();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`bench: ${err.message}`);
    return 2;
  }

  const startedAt = new Date();
  const dispatcher = new Agent({ connections: 16, keepAliveTimeout: 10_000 });
  try {
    const cluster = await inspectCluster(opts.gateway, storageDir, dispatcher);
    const { ctx, nginxMissing } = await prepare(opts, cluster, dispatcher);
    const { nginx, sampler } = ctx;
    progress(
      `Trove at ${opts.gateway} (STORAGE_DIR ${storageDir}); reference: ` +
        (nginx ? `nginx ${nginx.version} at ${nginx.url}` : 'none'),
    );

    sampler.start();
    const restAtStart = sampler.now();
    let small: SmallResults = { runs: [], syncLimit: undefined };
    let counter: CounterResults | undefined;
    let metadata: MetadataResults | undefined;
    let large: LargeResults | undefined;
    let resumable: ResumableResults | undefined;
    let repair: RepairResults | undefined;
    let rebalance: RebalanceResults | undefined;
    let processing: ProcessResults | undefined;
    let thumbnails: ThumbnailResults | undefined;
    let lb: LbResults | undefined;
    let memory: MemoryResults | undefined;
    let s3: S3Results | undefined;
    if (opts.runSmall) {
      sampler.setPhase('small');
      small = await runSmallSuite(ctx);
    }
    if (opts.runCounter) {
      sampler.setPhase('counter');
      counter = await runCounterSuite(ctx);
    }
    if (opts.runMetadata) {
      sampler.setPhase('metadata');
      metadata = await runMetadataSuite(ctx);
    }
    if (opts.runLarge) large = await runLargeSuite(ctx); // sets its own phases
    if (opts.runResumable) {
      sampler.setPhase('resumable');
      resumable = await runResumableSuite(ctx);
    }
    if (opts.runProcess) {
      sampler.setPhase('process');
      processing = await runProcessSuite(ctx);
    }
    if (opts.runThumbnails) {
      sampler.setPhase('thumbnails');
      thumbnails = await runThumbnailSuite(ctx, storageDir);
    }
    if (opts.runLb) {
      sampler.setPhase('lb');
      lb = await runLbSuite(ctx);
    }
    if (opts.runMemory) memory = await runMemorySuite(ctx); // sets its own phases
    if (opts.runS3) {
      sampler.setPhase('s3');
      s3 = await runS3Suite(ctx);
    }
    if (opts.runRepair) {
      sampler.setPhase('repair');
      repair = await runRepairSuite(ctx, storageDir);
      adoptRestarted(cluster, repair, ctx.notes);
    }
    if (opts.runRebalance) {
      sampler.setPhase('rebalance');
      rebalance = await runRebalanceSuite(ctx, storageDir);
    }
    progress('each process at rest at the end…');
    sampler.setPhase('end');
    const restAtEnd = await restingRss(ctx);
    sampler.stop();
    const run = { restAtStart, restAtEnd, peak: sampler.peakOverall() };
    ctx.notes.push(
      runMemoryNote(
        run,
        cluster.processes.map((p) => p.name),
      ),
    );
    for (const p of cluster.processes) {
      if (!isAlive(p.pid)) ctx.failures.push(`${p.name} (pid ${p.pid}) died during the bench`);
    }

    const rows = buildRows({
      small,
      counter,
      metadata,
      large,
      resumable,
      repair,
      rebalance,
      processing,
      thumbnails,
      lb,
      memory,
      s3,
      watched: cluster.processes.map((p) => p.name),
      nginxMissing,
    });
    const file = await writeResults(join(process.cwd(), 'bench-results'), startedAt, {
      startedAt,
      finishedAt: new Date(),
      options: opts,
      machine: machineInfo(),
      gateway: opts.gateway,
      storageDir,
      processes: cluster.processes,
      ready: cluster.ready,
      nginx: nginx
        ? { version: nginx.version, binary: nginx.binary, workerProcesses: 'auto' }
        : { skipped: nginxMissing },
      rows,
      small,
      counter,
      metadata,
      large,
      resumable,
      repair,
      rebalance,
      processing,
      thumbnails,
      lb,
      memory,
      s3,
      rssBytes: { ...run, phases: sampler.phases() },
      benchMaxRssBytes: process.resourceUsage().maxRSS * 1024,
      failures: ctx.failures,
      notes: ctx.notes,
    });
    printReport({
      opts,
      startedAt,
      rows,
      small: small.runs,
      notes: ctx.notes,
      failures: ctx.failures,
      file,
    });
    return ctx.failures.length > 0 ? 1 : 0;
  } catch (err) {
    if (!(err instanceof ClusterUnavailableError)) throw err;
    console.error(`\nbench: ${err.message}`);
    return 2;
  } finally {
    await cleanUp();
    await dispatcher.close();
  }
}

process.exitCode = await main().catch((err: Error) => {
  console.error(`bench: ${err.stack ?? err.message}`);
  return 1;
});

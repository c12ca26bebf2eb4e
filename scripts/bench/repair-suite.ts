/**
 * Repair throughput (`--only repair`; never in the default run, since it
 * kills a storage node and deletes its disk): how fast the worker gives a
 * wiped node back 1,000 objects of 64 KiB and 10 of 50 MB.
 *
 * The objects are uploaded (max_downloads=0) and found on every disk; the node
 * is killed with SIGKILL, its data directory removed, and it is restarted as
 * the drill does it (scripts/cluster-control.ts). The clock runs from the
 * restart until GET /api/cluster counts no under-replicated file and the
 * node's disk holds every object again. The reference is the same objects
 * copied the plainest way, in this run, onto the same node: GET from a
 * healthy node, PUT to the restored one, with the worker's concurrency and
 * no rate limit. The worker's own limit, REPAIR_BYTES_PER_SECOND, is shown
 * beside the figure: repair is capped on purpose so it never starves users.
 */
import {
  loadCommonConfig,
  loadWorkerConfig,
  type NodeAddress,
  type WorkerConfig,
} from '../../shared/config.js';
import {
  getCluster,
  killNode,
  missingOnDisk,
  nodeDataDir,
  restartNode,
  statusOf,
  verifyOnDisk,
  waitFor,
  wipeNode,
  type ClusterState,
  type Restarted,
} from '../cluster-control.js';
import { LARGE_BYTES, plainCopy, rateOf, uploadObjects, type CopyRate } from './bench-objects.js';
import { progress, type BenchContext } from './context.js';
import { WORKER_DEFAULTS } from './service-defaults.js';
import { SMALL_BYTES } from './small-suite.js';

export type RepairRate = CopyRate;

export interface RepairResults {
  node: string;
  objects: { small: number; large: number; bytes: number };
  /** REPAIR_BYTES_PER_SECOND as this shell's environment gives it (0 = unlimited). */
  limitBytesPerS: number;
  /** Repairs the worker runs at once (its prefetch); the reference copies as many at a time. */
  concurrency: number;
  /** Seconds from the restart until the first repaired copy showed in /api/cluster. */
  firstCopyS: number | undefined;
  /** Seconds from the restart until no file was under-replicated and the node held every object. */
  restoreS: number | undefined;
  /** Seconds from the restart until the node's disk held every 64 KiB object, and every 50 MB one. */
  smallBackS: number | undefined;
  largeBackS: number | undefined;
  /** The worker's copies (repairs.done / repairs.bytes deltas) over first copy → restored. */
  trove: RepairRate | undefined;
  /** The same objects, plain GET → PUT onto the same node. */
  reference: RepairRate | undefined;
  restarted: Restarted | undefined;
}

export async function runRepairSuite(
  ctx: BenchContext,
  storageDir: string,
): Promise<RepairResults> {
  const worker = workerSettings(ctx);
  const results: RepairResults = {
    node: ctx.opts.repairNode,
    objects: { small: 0, large: 0, bytes: 0 },
    limitBytesPerS: worker.repairBytesPerSecond,
    concurrency: worker.workerPrefetch,
    firstCopyS: undefined,
    restoreS: undefined,
    smallBackS: undefined,
    largeBackS: undefined,
    trove: undefined,
    reference: undefined,
    restarted: undefined,
  };
  const nodes = loadCommonConfig(process.env).nodes;
  const target = nodes.find((n) => n.id === ctx.opts.repairNode);
  const source = nodes.find((n) => n.id !== ctx.opts.repairNode);
  if (!target || !source) {
    ctx.failures.push(`repair: --node ${ctx.opts.repairNode} is not one of NODES, or it is alone`);
    return results;
  }
  const objects = await uploadObjects(ctx, 'repair');
  if (!objects) return results;
  results.objects = {
    small: objects.filter((o) => o.size === SMALL_BYTES).length,
    large: objects.filter((o) => o.size === LARGE_BYTES).length,
    bytes: objects.reduce((sum, o) => sum + o.size, 0),
  };
  const expected = new Map(objects.map((o) => [o.key, o.sha256]));
  try {
    progress('repair: waiting for three copies of every object before the kill…');
    await waitRestored(ctx, target, expected, 120_000);
    const sizes = new Map(objects.map((o) => [o.key, o.size]));
    await restoreWipedNode(ctx, storageDir, target, expected, sizes, results);
  } catch (err) {
    ctx.failures.push(`repair: ${(err as Error).message}`);
  }
  if (results.restoreS !== undefined) {
    const jobs = objects.map((blob) => ({ source, target, blob }));
    results.reference = await plainCopy(ctx, 'repair', storageDir, jobs, worker.workerPrefetch);
  }
  return results;
}

function workerSettings(
  ctx: BenchContext,
): Pick<WorkerConfig, 'repairBytesPerSecond' | 'workerPrefetch'> {
  try {
    return loadWorkerConfig(process.env);
  } catch (err) {
    ctx.notes.push(`repair: worker settings unreadable here, defaults assumed (${err})`);
    return WORKER_DEFAULTS;
  }
}

/** kill -9, wipe, restart, and the clock until the node holds everything again. */
async function restoreWipedNode(
  ctx: BenchContext,
  storageDir: string,
  target: NodeAddress,
  expected: Map<string, string>,
  sizes: Map<string, number>,
  results: RepairResults,
): Promise<void> {
  const before = await getCluster(ctx.trove.origin, ctx.dispatcher);
  const pid = await killNode(storageDir, target.id);
  progress(`repair: killed ${target.id} (pid ${pid}); waiting for the gateway to see it offline…`);
  // Offline, so its return is a plain offline → online that queues anti-entropy at once.
  await waitFor(
    `${target.id} offline`,
    async () =>
      statusOf(await getCluster(ctx.trove.origin, ctx.dispatcher), target.id) === 'offline',
    30_000,
    100,
  );
  const dir = await wipeNode(target.id);
  const restartedAt = performance.now();
  results.restarted = await restartNode(storageDir, target, 'bench');
  progress(
    `repair: wiped ${dir} and restarted ${target.id} (pid ${results.restarted.pid}, log ${results.restarted.log}); ` +
      `restoring ${results.objects.bytes / 1e6} MB at up to ${mbps(results.limitBytesPerS)}…`,
  );
  const since = () => (performance.now() - restartedAt) / 1000;
  const timeoutMs = restoreTimeoutMs(results.objects.bytes, results.limitBytesPerS);
  const large = new Set([...expected.keys()].filter((key) => sizes.get(key) === LARGE_BYTES));
  const after = await waitRestored(ctx, target, expected, timeoutMs, (state, missing) => {
    if (results.firstCopyS === undefined && state.repairs.done > before.repairs.done) {
      results.firstCopyS = since();
    }
    if (!missing) return;
    if (results.smallBackS === undefined && missing.every((key) => large.has(key))) {
      results.smallBackS = since();
    }
    if (results.largeBackS === undefined && !missing.some((key) => large.has(key))) {
      results.largeBackS = since();
    }
  });
  results.restoreS = since();
  progress(`repair: ${target.id} restored ${results.restoreS.toFixed(1)} s after the restart`);
  results.trove = troveRate(ctx, before, after, results);
  const problems = await verifyOnDisk(nodeDataDir(target.id), expected);
  ctx.failures.push(...problems.slice(0, 20).map((p) => `repair: ${target.id}: ${p}`));
}

/** Generous: four times what the rate limit alone needs, plus a minute for detection and queueing. */
function restoreTimeoutMs(bytes: number, limit: number): number {
  return Math.max(
    120_000,
    60_000 + (4 * bytes * 1000) / (limit || WORKER_DEFAULTS.repairBytesPerSecond),
  );
}

/**
 * Polls until every node is online, no file is under-replicated and the
 * node's disk names every expected blob with its sha256; returns the
 * cluster's state at that moment. `onPoll` sees each state and the keys the
 * disk still lacks (undefined while the node is not up).
 */
async function waitRestored(
  ctx: BenchContext,
  target: NodeAddress,
  expected: Map<string, string>,
  timeoutMs: number,
  onPoll?: (state: ClusterState, missing: string[] | undefined) => void,
): Promise<ClusterState> {
  const dir = nodeDataDir(target.id);
  return waitFor(
    `${target.id} to hold all ${expected.size} objects and no file under-replicated`,
    async () => {
      const state = await getCluster(ctx.trove.origin, ctx.dispatcher);
      const up = statusOf(state, target.id) === 'online';
      const missing = up ? await missingOnDisk(dir, expected) : undefined;
      onPoll?.(state, missing);
      if (state.nodes.some((n) => n.status !== 'online') || state.under_replicated > 0) return;
      return missing?.length === 0 && state;
    },
    timeoutMs,
    250,
  );
}

/** The worker's rate over its copy window, from the repair counters of /api/cluster. */
function troveRate(
  ctx: BenchContext,
  before: ClusterState,
  after: ClusterState,
  results: RepairResults,
): RepairRate | undefined {
  const done = after.repairs.done - before.repairs.done;
  const bytes = after.repairs.bytes - before.repairs.bytes;
  if (done <= 0 || results.firstCopyS === undefined || results.restoreS === undefined) {
    // The counters live in Redis: a Redis restart or FLUSHALL meanwhile resets them.
    ctx.failures.push(
      `repair: the repair counters did not rise (${done} copies): were they reset?`,
    );
    return undefined;
  }
  if (done > expectedCopies(results)) {
    ctx.notes.push(
      `repair: the worker made ${done} copies, not just the suite's ${expectedCopies(results)}: ` +
        'other files on this STORAGE_DIR were restored too (use a fresh STORAGE_DIR for clean figures)',
    );
  }
  return rateOf(results.restoreS - results.firstCopyS, done, bytes);
}

const expectedCopies = (r: RepairResults) => r.objects.small + r.objects.large;

const mbps = (bytesPerS: number) => (bytesPerS === 0 ? 'unlimited' : `${bytesPerS / 1e6} MB/s`);

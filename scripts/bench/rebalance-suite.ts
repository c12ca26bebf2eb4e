/**
 * Rebalance throughput (`--only rebalance`; never in the default run, since
 * it changes the cluster's layout twice): how fast the worker moves replicas
 * onto a node added to the layout, 1,000 objects of 64 KiB and 10 of 50 MB.
 *
 * The objects are uploaded (max_downloads=0) and the cluster left to settle
 * (images processed, nothing under-replicated, the worker idle). A fourth
 * storage node is started beside the three of `npm start` (same STORAGE_DIR
 * and secret, a free port) and added with `npm run cluster -- add`'s own
 * code. The clock runs from the layout change until GET /api/cluster says
 * the rebalance of that version is `done`; what moved is read from the
 * metadata (the replica rows on the new node) and every row and disk is
 * checked against the placement. The reference is the same blobs copied the
 * plainest way in this run, onto the same node, in the same order: GET from
 * a node that holds each, PUT under a key no file owns, one at a time (the
 * rebalance moves one blob at a time) and 8 at a time, no rate limit. The
 * worker's own limits, REBALANCE_BYTES_PER_SECOND and
 * REBALANCE_OBJECTS_PER_SECOND, are shown beside the figures.
 *
 * Then the cluster is put back as it was, whatever failed before: the node
 * is drained (that move is timed too), removed from the layout once it holds
 * nothing, stopped and its disk deleted, and the suite's files are deleted.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { loadWorkerConfig, type NodeAddress, type WorkerConfig } from '../../shared/config.js';
import { ensureLayout } from '../../shared/layout-store.js';
import { createLogger } from '../../shared/logger.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import { openMetadataStore } from '../../shared/open-metadata-store.js';
import {
  getCluster,
  nodeDataDir,
  readPid,
  startNode,
  stopNode,
  verifyOnDisk,
  waitFor,
  type Restarted,
} from '../cluster-control.js';
import { ClusterRefusedError, runCommand, type ClusterDeps } from '../cluster/commands.js';
import { fetchNodeHealth } from '../cluster/node-check.js';
import type { ClusterCommand } from '../cluster/options.js';
import {
  LARGE_BYTES,
  deleteObjects,
  plainCopy,
  rateOf,
  uploadObjects,
  type BenchObject,
  type CopyRate,
} from './bench-objects.js';
import { progress, type BenchContext } from './context.js';
import {
  blobsPlacedOn,
  checkPlacement,
  markChange,
  placedFiles,
  watchPass,
  type PassWatch,
  type PlacedBlob,
  type PlacementCheck,
} from './rebalance-watch.js';
import { waitSettled } from './rebalance-settle.js';
import { WORKER_DEFAULTS } from './service-defaults.js';
import { SMALL_BYTES } from './small-suite.js';

/** The node the suite adds, then drains and removes. */
const NEW_NODE = 'node4';

/** A rebalance pass timed from its layout change, with what it moved according to the metadata. */
export interface RebalanceMove extends PassWatch {
  /** Replicas put on their new node, and their bytes. */
  moved: number;
  bytes: number;
  /** `moved` and `bytes` over the wall time from the layout change to `done`. */
  rate: CopyRate;
}

export interface RebalanceResults {
  node: string;
  url: string | undefined;
  objects: { small: number; large: number; bytes: number };
  /** The worker's limits, and where they were read (its environment, or this shell's). */
  throttle: { bytesPerS: number; objectsPerS: number; from: string };
  /** The move onto the new node, and the one off it again (the drain). */
  add: RebalanceMove | undefined;
  drain: RebalanceMove | undefined;
  /** The same blobs copied plainly onto the new node, one at a time and 8 at a time. */
  reference: { one: CopyRate | undefined; eight: CopyRate | undefined };
  placement: { afterAdd: PlacementCheck | undefined; afterDrain: PlacementCheck | undefined };
  /** The moved copies read back from the new node's disk and hashed: how many, how many wrong. */
  hashed: { blobs: number; wrong: number } | undefined;
  /** The cluster ended as it began: the node out of the layout, stopped, its disk removed. */
  restored: boolean;
}

/** What the suite changed, so that the clean-up undoes exactly that. */
interface Run {
  ctx: BenchContext;
  storageDir: string;
  store: MetadataStore;
  config: WorkerConfig;
  results: RebalanceResults;
  node: NodeAddress | undefined;
  /** The node's NODE_PORT, which the node config needs since it is not in NODES. */
  env: Record<string, string>;
  started: Restarted | undefined;
  inLayout: boolean;
  before: string[];
}

export async function runRebalanceSuite(
  ctx: BenchContext,
  storageDir: string,
): Promise<RebalanceResults> {
  const worker = workerSettings(ctx, storageDir);
  const results: RebalanceResults = {
    node: NEW_NODE,
    url: undefined,
    objects: { small: 0, large: 0, bytes: 0 },
    throttle: worker.throttle,
    add: undefined,
    drain: undefined,
    reference: { one: undefined, eight: undefined },
    placement: { afterAdd: undefined, afterDrain: undefined },
    hashed: undefined,
    restored: false,
  };
  const log = createLogger('bench', 'warn', { stream: process.stderr });
  const store = await openMetadataStore(worker.config, log);
  const run: Run = {
    ctx,
    storageDir,
    store,
    config: worker.config,
    results,
    node: undefined,
    env: {},
    started: undefined,
    inLayout: false,
    before: [],
  };
  let objects: BenchObject[] | undefined;
  try {
    const state = await getCluster(ctx.trove.origin, ctx.dispatcher);
    run.before = state.nodes.map((n) => n.id).sort();
    const layout = await ensureLayout(store, worker.config.nodes);
    if (layout.nodes.some((n) => n.id === NEW_NODE)) {
      throw new Error(
        `${NEW_NODE} is in the layout already (a run cut short?): see npm run cluster -- show, ` +
          `then drain and remove it (docs/layout.md) before running this suite`,
      );
    }
    objects = await uploadObjects(ctx, 'rebalance');
    if (!objects) return results;
    results.objects = {
      small: objects.filter((o) => o.size === SMALL_BYTES).length,
      large: objects.filter((o) => o.size === LARGE_BYTES).length,
      bytes: objects.reduce((sum, o) => sum + o.size, 0),
    };
    await waitSettled(ctx, objects, readPid(storageDir, 'worker'));
    await addNode(run);
    const moved = await measureAdd(run);
    await measureReference(run, moved);
  } catch (err) {
    ctx.failures.push(`rebalance: ${(err as Error).message}`);
  } finally {
    await restore(run).catch((err: Error) =>
      ctx.failures.push(`rebalance: restoring the cluster: ${err.message}`),
    );
    if (objects) {
      const problems = await deleteObjects(ctx, objects);
      ctx.failures.push(...problems.slice(0, 5).map((p) => `rebalance: deleting: ${p}`));
    }
    await store.close();
  }
  return results;
}

/**
 * The worker's limits as it runs: its own environment (/proc/<pid>/environ)
 * over this shell's and .env, as the worker resolves them; this shell's
 * alone when the worker's cannot be read.
 */
function workerSettings(ctx: BenchContext, storageDir: string) {
  const pid = readPid(storageDir, 'worker');
  let theirs: Record<string, string> | undefined;
  try {
    if (pid !== undefined) theirs = environOf(pid);
  } catch {
    theirs = undefined;
  }
  let config: WorkerConfig;
  try {
    config = loadWorkerConfig({ ...process.env, ...theirs });
  } catch (err) {
    ctx.notes.push(`rebalance: worker settings unreadable, defaults assumed (${err})`);
    config = WORKER_DEFAULTS;
  }
  const from = theirs ? `the worker's environment (pid ${pid})` : "this shell's environment";
  return {
    config,
    throttle: {
      bytesPerS: config.rebalanceBytesPerSecond,
      objectsPerS: config.rebalanceObjectsPerSecond,
      from,
    },
  };
}

function environOf(pid: number): Record<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return Object.fromEntries(
    entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
  );
}

/** A TCP port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs an `npm run cluster` command with its own code; its answer goes to the progress lines. */
async function cluster(run: Run, cmd: ClusterCommand): Promise<void> {
  const deps: ClusterDeps = {
    store: run.store,
    seedNodes: run.config.nodes,
    copies: run.config.replicationFactor,
    health: fetchNodeHealth,
    out: (line) => progress(`rebalance: cluster ${cmd.name}: ${line}`),
  };
  await runCommand(cmd, deps);
}

/** Starts the fourth node on a free port and adds it to the layout. */
async function addNode(run: Run): Promise<void> {
  const port = await freePort();
  const node = { id: NEW_NODE, url: `http://127.0.0.1:${port}` };
  run.env = { NODE_PORT: String(port) };
  run.node = node;
  run.results.url = node.url;
  run.started = await startNode(run.storageDir, node, 'bench', { env: run.env });
  progress(
    `rebalance: started ${node.id} at ${node.url} (pid ${run.started.pid}, log ${run.started.log}); ` +
      `if this run is cut short, put the cluster back with npm run cluster -- drain ${node.id}, ` +
      `then remove ${node.id}, then kill ${run.started.pid}`,
  );
  await cluster(run, { name: 'add', ...node, zone: undefined, weight: undefined, check: true });
  run.inLayout = true;
}

/** The clock from the layout change to `done`; the blobs now on the new node. */
async function measureAdd(run: Run): Promise<PlacedBlob[]> {
  const { ctx, results, store } = run;
  const change = markChange((await store.currentLayout())!.version);
  const { bytesPerS, objectsPerS } = results.throttle;
  progress(
    `rebalance: layout ${change.layoutVersion} saved; timing the rebalance onto ${NEW_NODE} ` +
      `(limits: ${bytesPerS ? `${bytesPerS / 1e6} MB/s` : 'no byte limit'}, ` +
      `${objectsPerS ? `${objectsPerS} objects/s` : 'no object limit'})…`,
  );
  const pass = await watchPass(ctx.trove.origin, ctx.dispatcher, change, timeoutMs(run));
  const files = await placedFiles(store);
  const moved = blobsPlacedOn(files, NEW_NODE);
  results.add = moveOf(pass, moved);
  progress(
    `rebalance: done ${pass.seconds.toFixed(1)} s after the change: ${moved.length} replicas ` +
      `(${(results.add.bytes / 1e6).toFixed(0)} MB) on ${NEW_NODE}, ` +
      `${results.add.rate.objectsPerS.toFixed(1)} objects/s, ${results.add.rate.mbPerS.toFixed(1)} MB/s; ` +
      `profile window: --from ${pass.windowUs.from} --to ${pass.windowUs.to}`,
  );
  if (pass.pass.moved !== moved.length) {
    ctx.notes.push(
      `rebalance: the passes reported ${pass.pass.moved} moves, the metadata has ${moved.length} ` +
        `replicas on ${NEW_NODE} (${pass.passes} pass(es) for layout ${change.layoutVersion})`,
    );
  }
  results.placement.afterAdd = await placementProblems(run, files, 'after the move');
  const expected = new Map(moved.map((b) => [b.key, b.sha256]));
  const wrong = await verifyOnDisk(nodeDataDir(NEW_NODE, run.env), expected);
  results.hashed = { blobs: expected.size, wrong: wrong.length };
  ctx.failures.push(...wrong.slice(0, 10).map((p) => `rebalance: ${NEW_NODE}: ${p}`));
  return moved;
}

function moveOf(pass: PassWatch, blobs: PlacedBlob[]): RebalanceMove {
  const bytes = blobs.reduce((sum, b) => sum + b.size, 0);
  return { ...pass, moved: blobs.length, bytes, rate: rateOf(pass.seconds, blobs.length, bytes) };
}

/** Generous: four times what the limits alone need for every object, plus two minutes. */
function timeoutMs(run: Run): number {
  const { bytesPerS, objectsPerS } = run.results.throttle;
  const { bytes, small, large } = run.results.objects;
  const byBytes = bytesPerS ? bytes / bytesPerS : 0;
  const byObjects = objectsPerS ? (small + large) / objectsPerS : 0;
  return 120_000 + 4000 * (byBytes + byObjects);
}

/** Rows and disks against the layout in force; each problem a failure. */
async function placementProblems(
  run: Run,
  files: Awaited<ReturnType<typeof placedFiles>>,
  when: string,
): Promise<PlacementCheck> {
  const layout = (await run.store.currentLayout())!;
  const dirs = new Map(
    layout.nodes.map((n) => [n.id, nodeDataDir(n.id, n.id === NEW_NODE ? run.env : {})]),
  );
  const check = await checkPlacement(files, layout, run.config.replicationFactor, dirs);
  run.ctx.failures.push(...check.examples.map((e) => `rebalance: ${when}: ${e}`));
  return check;
}

/** The same blobs, same order, plainly onto the new node: one at a time, then 8. */
async function measureReference(run: Run, moved: PlacedBlob[]): Promise<void> {
  const layout = (await run.store.currentLayout())!;
  const jobs = moved.map((blob) => {
    const source = layout.nodes.find((n) => n.id === blob.others[0]);
    if (!source) throw new Error(`${blob.key}: no other node holds it`);
    return { source, target: run.node!, blob };
  });
  const { ctx, storageDir, results } = run;
  results.reference.one = await plainCopy(ctx, 'rebalance', storageDir, jobs, 1);
  results.reference.eight = await plainCopy(ctx, 'rebalance', storageDir, jobs, 8);
}

/**
 * Puts the cluster back: drains the node (timed: the same blobs move back),
 * removes it once empty, stops it and deletes its disk. A node still in the
 * layout is left running (it may hold replicas), with what to do in the failure.
 */
async function restore(run: Run): Promise<void> {
  const { ctx, storageDir, results } = run;
  if (run.inLayout) await drainAndRemove(run);
  if (run.started) {
    const pid = await stopNode(storageDir, NEW_NODE);
    const dir = nodeDataDir(NEW_NODE, run.env);
    await rm(dir, { recursive: true, force: true });
    progress(`rebalance: stopped ${NEW_NODE} (pid ${pid}) and removed ${dir}`);
  }
  const state = await getCluster(ctx.trove.origin, ctx.dispatcher);
  const now = state.nodes.map((n) => n.id).sort();
  const down = state.nodes.filter((n) => n.status !== 'online').map((n) => n.id);
  results.restored = now.join() === run.before.join() && down.length === 0;
  if (!results.restored) {
    ctx.failures.push(
      `rebalance: the cluster did not end as it began: nodes ${now.join(', ')} ` +
        `(before: ${run.before.join(', ')}), not online: ${down.join(', ') || 'none'}`,
    );
  }
}

async function drainAndRemove(run: Run): Promise<void> {
  const { ctx, store, results } = run;
  try {
    const onNode = blobsPlacedOn(await placedFiles(store), NEW_NODE);
    const layout = await ensureLayout(store, run.config.nodes);
    if (layout.nodes.find((n) => n.id === NEW_NODE)?.role === 'active') {
      await cluster(run, { name: 'drain', id: NEW_NODE });
    }
    const change = markChange((await store.currentLayout())!.version);
    progress(`rebalance: draining ${NEW_NODE}: ${onNode.length} replicas to move back…`);
    const pass = await watchPass(ctx.trove.origin, ctx.dispatcher, change, timeoutMs(run));
    results.drain = moveOf(pass, onNode);
    progress(
      `rebalance: drained in ${pass.seconds.toFixed(1)} s, ${results.drain.rate.objectsPerS.toFixed(1)} objects/s, ` +
        `${results.drain.rate.mbPerS.toFixed(1)} MB/s`,
    );
    results.placement.afterDrain = await placementProblems(
      run,
      await placedFiles(store),
      'after the drain',
    );
    // Empty by now; a node's count of what it holds may trail its last delete by a moment.
    await waitFor(
      `${NEW_NODE} to be removable`,
      async () => {
        try {
          await cluster(run, { name: 'remove', id: NEW_NODE, force: false });
          return true;
        } catch (err) {
          if (!(err instanceof ClusterRefusedError)) throw err;
          progress(`rebalance: not yet: ${err.message}`);
          return false;
        }
      },
      30_000,
      1000,
    );
    run.inLayout = false;
    await waitFor(
      `the gateway to drop ${NEW_NODE}`,
      async () =>
        !(await getCluster(ctx.trove.origin, ctx.dispatcher)).nodes.some((n) => n.id === NEW_NODE),
      30_000,
      200,
    );
  } catch (err) {
    const pid = run.started?.pid;
    run.started = undefined; // it may hold the only tracked copy of something: never stopped here
    throw new Error(
      `${(err as Error).message}; ${NEW_NODE} is still in the layout and still runs ` +
        `(pid ${pid}): finish by hand with npm run cluster -- show, then remove ${NEW_NODE} once ` +
        `it holds nothing, then kill ${pid}`,
    );
  }
}

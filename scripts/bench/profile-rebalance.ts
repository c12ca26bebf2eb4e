/**
 * Where a rebalance pass spends its wall time. A pass moves one blob at a
 * time, so a CPU profile of the worker (mostly idle, waiting) says little:
 * this runs one pass in this process, built as worker/run.ts builds it, with
 * every call to the metadata store, the storage nodes and Redis timed, and
 * prints the wall time of each kind of call beside the pass's own.
 *
 * usage: npm run build; node dist/scripts/bench/profile-rebalance.js prepare|pass|clean \
 *          [--ids <file>] [--gateway <url>]
 *
 *   prepare  uploads the rebalance suite's objects (1,000 × 64 KiB, 10 × 50 MB) and writes
 *            their ids and delete tokens to --ids, then waits for the worker to be done with them
 *   pass     one rebalance pass for the layout in force, in this process; pause the worker
 *            first (kill -STOP), or it may run the pass itself
 *   clean    deletes the files --ids names
 *
 * Built, on bare node: under tsx, `redlock` resolves to its index.d.ts, whose
 * class has no methods (the pass fails with "redlock.using is not a function").
 *
 * A session, worker paused between `prepare` and `clean` (docs/benchmarks.md, "Rebalance"):
 *   prepare; kill -STOP <worker>; start node4; cluster add node4 …; pass;
 *   cluster drain node4; pass; cluster remove node4; stop node4; kill -CONT <worker>; clean
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { loadClusterSecret } from '../../shared/cluster-secret.js';
import { loadDotEnv, loadWorkerConfig } from '../../shared/config.js';
import { LayoutWatcher } from '../../shared/layout-watcher.js';
import { createLogger } from '../../shared/logger.js';
import { NodeClient } from '../../shared/node-client.js';
import { openMetadataStore } from '../../shared/open-metadata-store.js';
import { readProgress } from '../../shared/rebalance-progress.js';
import { closeRedis, createRedis, createRedlock } from '../../shared/redis.js';
import { ByteRate } from '../../worker/byte-rate.js';
import { Rebalancer } from '../../worker/rebalancer.js';
import { readPid } from '../cluster-control.js';
import { deleteObjects, uploadObjects, type BenchObject } from './bench-objects.js';
import { DEFAULT_GATEWAY } from './cluster.js';
import type { BenchContext } from './context.js';
import { waitSettled } from './rebalance-settle.js';

/** Wall time of the calls of one kind: how many, and the time at least one of them ran. */
interface Kind {
  calls: number;
  active: number;
  since: number;
  ms: number;
}

/** Times every promise-returning method of the objects it wraps, by `label.method`. */
class CallTimes {
  readonly kinds = new Map<string, Kind>();
  private readonly any: Kind = { calls: 0, active: 0, since: 0, ms: 0 };

  wrap<T extends object>(target: T, label: string): T {
    return new Proxy(target, {
      get: (obj, prop) => {
        const value: unknown = Reflect.get(obj, prop, obj);
        if (typeof value !== 'function' || typeof prop === 'symbol') return value;
        return (...args: unknown[]) => {
          // From before the call: better-sqlite3 does its work before the promise is returned.
          const at = performance.now();
          // Called on the object itself: its own calls to its methods are not counted again.
          const result: unknown = value.apply(obj, args);
          if (!(result instanceof Promise)) return result;
          const kind = this.kind(`${label}.${prop}`);
          this.start(kind, at);
          this.start(this.any, at);
          const end = () => {
            this.end(kind);
            this.end(this.any);
          };
          return result.finally(end);
        };
      },
    });
  }

  /** Wall time during which at least one timed call ran. */
  get busyMs(): number {
    return this.any.ms;
  }

  private kind(name: string): Kind {
    let kind = this.kinds.get(name);
    if (!kind) this.kinds.set(name, (kind = { calls: 0, active: 0, since: 0, ms: 0 }));
    return kind;
  }

  // Overlapping calls (the HEADs of the copies kept, in parallel) count once: wall time, not a sum.
  private start(k: Kind, at: number): void {
    k.calls++;
    if (k.active++ === 0) k.since = at;
  }

  private end(k: Kind): void {
    if (--k.active === 0) k.ms += performance.now() - k.since;
  }
}

async function pass(): Promise<void> {
  loadDotEnv();
  const config = loadWorkerConfig(process.env);
  const log = createLogger('profile', 'warn', { stream: process.stderr });
  const times = new CallTimes();
  const store = await openMetadataStore(config, log);
  const secret = loadClusterSecret(config.storageDir, config.clusterSecret);
  const client = new NodeClient({ secret, timeoutMs: config.nodeTimeoutMs });
  const redis = createRedis(config.redisConnection, log);
  const layout = await LayoutWatcher.start({
    store,
    seed: config.nodes,
    pollMs: config.layoutPollMs,
    log,
  });
  const worker = readPid(config.storageDir, 'worker');
  if (worker !== undefined && readFileSync(`/proc/${worker}/stat`, 'utf8').split(' ')[2] !== 'T') {
    console.error(`the worker (pid ${worker}) is running: pause it first, kill -STOP ${worker}`);
  }
  let repairs = 0;
  const rebalancer = new Rebalancer({
    store: times.wrap(store, 'store'),
    client: times.wrap(client, 'node'),
    layout,
    redis: times.wrap(redis, 'redis (progress)'),
    redlock: createRedlock(times.wrap(redis, 'redis (locks)')),
    log,
    prefix: config.clusterName,
    copies: config.replicationFactor,
    bytes: new ByteRate(config.rebalanceBytesPerSecond),
    objects: new ByteRate(config.rebalanceObjectsPerSecond),
    concurrency: config.rebalanceConcurrency,
    repair: async () => void repairs++,
  });
  const started = performance.now();
  await rebalancer.run('profile-rebalance.ts');
  const wallMs = performance.now() - started;
  const progress = await readProgress(redis, config.clusterName);
  layout.stop();
  closeRedis(redis);
  await Promise.all([store.close(), client.close()]);

  const moves = Math.max(progress?.moved ?? 0, 1);
  const line = (name: string, calls: number | string, ms: number) =>
    `${name.padEnd(34)} ${String(calls).padStart(6)} ${ms.toFixed(0).padStart(8)} ms ` +
    `${((ms / wallMs) * 100).toFixed(1).padStart(5)} % ${(ms / moves).toFixed(2).padStart(7)} ms/move`;
  console.log(
    `layout ${layout.current().version}: ${progress?.state} — ${progress?.moved} moved, ` +
      `${progress?.removed} removed, ${((progress?.bytes ?? 0) / 1e6).toFixed(0)} MB, ` +
      `${progress?.scanned} files scanned, ${repairs} repairs asked, in ${(wallMs / 1000).toFixed(1)} s\n`,
  );
  console.log(
    `${'call'.padEnd(34)} ${'calls'.padStart(6)} ${'wall'.padStart(11)} ${'share'.padStart(7)}`,
  );
  const kinds = [...times.kinds].sort((a, b) => b[1].ms - a[1].ms);
  for (const [name, k] of kinds) console.log(line(name, k.calls, k.ms));
  console.log(line('any of the above', '', times.busyMs));
  console.log(line("none: the pass's own code, GC", '', wallMs - times.busyMs));
}

async function prepare(idsFile: string, gateway: string): Promise<void> {
  const dispatcher = new Agent({ connections: 8 });
  const scratch = await mkdtemp(join(tmpdir(), 'trove-profile-'));
  // What the upload helpers use of the bench's context.
  const ctx = {
    trove: { origin: gateway, prefix: '' },
    dispatcher,
    scratch,
    failures: [],
    notes: [],
  } as unknown as BenchContext;
  try {
    const objects = await uploadObjects(ctx, 'profile');
    if (!objects) throw new Error(ctx.failures.join('; '));
    writeFileSync(idsFile, JSON.stringify(objects));
    loadDotEnv();
    await waitSettled(ctx, objects, readPid(loadWorkerConfig(process.env).storageDir, 'worker'));
    console.log(`${objects.length} files in ${idsFile}`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
    await dispatcher.close();
  }
}

async function clean(idsFile: string, gateway: string): Promise<void> {
  const dispatcher = new Agent({ connections: 8 });
  const objects = JSON.parse(readFileSync(idsFile, 'utf8')) as BenchObject[];
  const ctx = { trove: { origin: gateway, prefix: '' }, dispatcher } as unknown as BenchContext;
  const problems = await deleteObjects(ctx, objects);
  await dispatcher.close();
  console.log(`${objects.length - problems.length} of ${objects.length} files deleted`);
  for (const p of problems.slice(0, 10)) console.log(`  ${p}`);
}

const { values, positionals } = parseArgs({
  options: {
    ids: { type: 'string', default: '/tmp/trove-profile-rebalance.json' },
    gateway: { type: 'string', default: DEFAULT_GATEWAY },
  },
  allowPositionals: true,
});
const gateway = values.gateway.replace(/\/+$/, '');
switch (positionals[0]) {
  case 'prepare':
    await prepare(values.ids, gateway);
    break;
  case 'pass':
    await pass();
    break;
  case 'clean':
    await clean(values.ids, gateway);
    break;
  default:
    console.error(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]);
    process.exitCode = 2;
}

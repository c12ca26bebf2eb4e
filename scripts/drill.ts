/**
 * `npm run drill`: a failover drill against a running cluster (`npm start`).
 * Uploads files, keeps user traffic going, kill -9s one storage node, checks
 * that nothing fails and nothing is lost while it is down, restarts it
 * (optionally on a wiped disk) and times the return to three verified copies.
 * See docs/drill.md.
 *
 * Exit code: 0 when no request failed and every file is intact and fully
 * replicated again; 1 otherwise; 2 when the cluster is not there or not ready,
 * or a flag is wrong.
 */
import { existsSync } from 'node:fs';
import { Agent } from 'undici';
import { ConfigError } from '../shared/config.js';
import {
  ClusterNotReadyError,
  clusterLayout,
  requireHealthyCluster,
  storageNodeEntry,
  storageNodePid,
} from './cluster-control.js';
import { USAGE, UsageError, parseDrillOptions, type DrillOptions } from './drill/options.js';
import { renderReport } from './drill/report.js';
import { Drill, progress } from './drill/run.js';

function parseFlags(): DrillOptions | number {
  try {
    const parsed = parseDrillOptions(process.argv.slice(2));
    if (parsed !== 'help') return parsed;
    console.log(USAGE);
    return 0;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`drill: ${err.message}\n\n${USAGE}`);
    return 2;
  }
}

/** Everything that must hold before a node is killed; throws ClusterNotReadyError otherwise. */
async function preflight(
  opts: DrillOptions,
  storageDir: string,
  nodeIds: string[],
  dispatcher: Agent,
): Promise<number> {
  if (!nodeIds.includes(opts.node)) {
    throw new ClusterNotReadyError(`--node ${opts.node} is not in NODES (${nodeIds.join(', ')})`);
  }
  if (!existsSync(storageNodeEntry())) {
    throw new ClusterNotReadyError(
      `${storageNodeEntry()} is missing: run npm run build (npm start does)`,
    );
  }
  const state = await requireHealthyCluster(opts.gateway, dispatcher);
  const unknown = nodeIds.filter((id) => !state.nodes.some((n) => n.id === id));
  if (unknown.length > 0 || state.nodes.length !== nodeIds.length) {
    throw new ClusterNotReadyError(
      `the gateway's nodes (${state.nodes.map((n) => n.id).join(', ')}) are not NODES here ` +
        `(${nodeIds.join(', ')}): run the drill with the cluster's environment`,
    );
  }
  return storageNodePid(storageDir, opts.node);
}

async function main(): Promise<number> {
  const opts = parseFlags();
  if (typeof opts === 'number') return opts;
  let layout;
  try {
    layout = clusterLayout();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`drill: ${err.message}`);
    return 2;
  }
  const dispatcher = new Agent({ connections: opts.concurrency * 2 + 4, keepAliveTimeout: 10_000 });
  try {
    const pid = await preflight(
      opts,
      layout.storageDir,
      layout.nodes.map((n) => n.id),
      dispatcher,
    );
    progress(
      `Trove at ${opts.gateway}, STORAGE_DIR ${layout.storageDir}; ` +
        `${opts.node} (pid ${pid}) will be killed${opts.wipe ? ' and wiped' : ''}`,
    );
    const drill = new Drill(opts, layout.storageDir, layout.nodes, dispatcher);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        progress(`${signal}: restarting ${opts.node} if it is down, then exiting`);
        void drill.ensureRestarted().finally(() => process.exit(130));
      });
    }
    const result = await drill.run();
    console.log(renderReport(result));
    return result.tally.failures.length + result.losses.length > 0 ? 1 : 0;
  } catch (err) {
    if (!(err instanceof ClusterNotReadyError)) throw err;
    console.error(`\ndrill: ${err.message}`);
    return 2;
  } finally {
    await dispatcher.close();
  }
}

process.exitCode = await main().catch((err: Error) => {
  console.error(`drill: ${err.stack ?? err.message}`);
  return 1;
});

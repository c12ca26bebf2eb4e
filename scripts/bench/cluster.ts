/**
 * The running cluster the bench measures: its gateway URL, and its processes
 * found through the pid files each service writes under STORAGE_DIR/run/.
 */
import { readFileSync } from 'node:fs';
import { request, type Dispatcher } from 'undici';
import { loadCommonConfig, loadDotEnv } from '../../shared/config.js';
import { pidFilePath } from '../../shared/pid-file.js';
import { commandLine, isAlive, type Watched } from './procfs.js';
import { GATEWAY_DEFAULTS } from './service-defaults.js';

/** The storage nodes `npm start` runs with the default NODES. */
const DEFAULT_NODE_IDS = GATEWAY_DEFAULTS.nodes.map((n) => n.id);
/** The processes of `npm start`, by the names of their pid files. */
export const SERVICES = ['gateway', ...DEFAULT_NODE_IDS, 'worker'];
/** Storage nodes the figures assume: three replicas, as `npm start` runs them. */
const NODES = DEFAULT_NODE_IDS.length;
/** The bench's --gateway when none is given: the gateway's default PORT on this machine. */
export const DEFAULT_GATEWAY = `http://127.0.0.1:${GATEWAY_DEFAULTS.server.port}`;

export interface ClusterView {
  storageDir: string;
  /** Processes found alive through their pid files. */
  processes: Watched[];
  /** Why a process is missing from `processes`, or looks wrong. */
  warnings: string[];
  ready: unknown;
}

/** The cluster is not there or not ready: the bench cannot run. */
export class ClusterUnavailableError extends Error {}

/** STORAGE_DIR as the services see it: the environment, else `.env`, else ./storage. */
export function storageDirFromEnv(): string {
  loadDotEnv();
  return loadCommonConfig(process.env).storageDir;
}

export async function inspectCluster(
  gateway: string,
  storageDir: string,
  dispatcher: Dispatcher,
): Promise<ClusterView> {
  const ready = await checkGateway(gateway, dispatcher);
  const processes: Watched[] = [];
  const warnings: string[] = [];
  for (const name of SERVICES) {
    const file = pidFilePath(storageDir, name);
    let pid: number;
    try {
      pid = Number(readFileSync(file, 'utf8').trim());
    } catch {
      warnings.push(
        `${name}: no pid file at ${file} (is STORAGE_DIR the one the cluster runs with?); its RSS and CPU are not measured`,
      );
      continue;
    }
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) {
      warnings.push(
        `${name}: pid file ${file} names ${pid}, which is not running; its RSS and CPU are not measured`,
      );
      continue;
    }
    // dist/<service>/main.js when built (npm start), <service>/main.ts under tsx.
    const script = name.startsWith('node') ? 'storage-node/main.' : `${name}/main.`;
    const cmd = commandLine(pid);
    if (!cmd.includes(script))
      warnings.push(`${name}: pid ${pid} runs "${cmd.slice(0, 80)}", not ${script}`);
    processes.push({ name, pid });
  }
  return { storageDir, processes, warnings, ready };
}

async function checkGateway(gateway: string, dispatcher: Dispatcher): Promise<unknown> {
  let status: number;
  let body: unknown;
  try {
    const res = await request(`${gateway}/ready`, {
      dispatcher,
      headersTimeout: 5000,
      bodyTimeout: 5000,
      signal: AbortSignal.timeout(5000),
    });
    status = res.statusCode;
    body = await res.body.json().catch(() => undefined);
  } catch (err) {
    throw new ClusterUnavailableError(
      `the Trove gateway does not answer at ${gateway} (${(err as Error).message}).\n` +
        'Start the cluster first, in another terminal:  RATE_LIMITS=off npm start\n' +
        `then run the bench again (with the same STORAGE_DIR, and --gateway <url> if it is not on port ${GATEWAY_DEFAULTS.server.port}).`,
    );
  }
  const ready = body as { ready?: boolean; nodes_online?: number } | undefined;
  if (status !== 200 || ready?.ready !== true || (ready.nodes_online ?? 0) < NODES) {
    throw new ClusterUnavailableError(
      `the gateway at ${gateway} answers but is not ready with every node: GET /ready → ${status} ${JSON.stringify(body)}.\n` +
        'Check the `npm start` terminal; the bench needs all three storage nodes online.',
    );
  }
  return body;
}

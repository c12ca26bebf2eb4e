/**
 * Controlling a running local cluster from outside, for the failover drill
 * (`npm run drill`) and the bench's repair and rebalance suites: its view
 * through GET /api/cluster, killing or stopping a storage node by its pid
 * file, wiping its disk, starting it detached, and checking which blobs its
 * disk really holds.
 *
 * Everything goes through what an operator has: the gateway's public API, the
 * pid files the services write under STORAGE_DIR/run/, and the node's files.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
} from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request, type Dispatcher } from 'undici';
import {
  loadCommonConfig,
  loadDotEnv,
  loadNodeConfig,
  type NodeAddress,
} from '../shared/config.js';
import { pidFilePath } from '../shared/pid-file.js';

export type NodeStatus = 'online' | 'suspect' | 'offline';

/** The parts of GET /api/cluster the scripts read. */
export interface ClusterState {
  layout: { version: number };
  nodes: { id: string; url: string; status: NodeStatus; objects: number | null }[];
  objects: number;
  under_replicated: number;
  repairs: { queued: number; done: number; bytes: number };
  /** The newest rebalance pass; null before any ran. */
  rebalance: RebalanceState | null;
}

/** `rebalance` of GET /api/cluster. */
export interface RebalanceState {
  state: 'running' | 'done' | 'incomplete';
  layout_version: number;
  total: number;
  scanned: number;
  moved: number;
  removed: number;
  bytes: number;
  left: number;
  objects_per_second: number;
  bytes_per_second: number;
  started_at: string;
  updated_at: string;
}

/** The cluster is not there, not ready, or not the one STORAGE_DIR describes. */
export class ClusterNotReadyError extends Error {}

/** STORAGE_DIR and NODES as the services see them: the environment, else `.env`, else defaults. */
export function clusterLayout(): { storageDir: string; nodes: NodeAddress[] } {
  loadDotEnv();
  const config = loadCommonConfig(process.env);
  return { storageDir: config.storageDir, nodes: config.nodes };
}

/**
 * A node's data directory, resolved as the node itself resolves it
 * (NODE_DATA_DIR or STORAGE_DIR/<id>); `env` adds to this process's
 * environment what the node was started with (NODE_PORT for a node not in NODES).
 */
export function nodeDataDir(nodeId: string, env: Record<string, string> = {}): string {
  return loadNodeConfig({ ...process.env, ...env }, ['--id', nodeId]).nodeDataDir;
}

/** The project root, whether this file runs from scripts/ (tsx) or dist/scripts/ (built). */
function projectRoot(): string {
  const up = dirname(dirname(fileURLToPath(import.meta.url)));
  return basename(up) === 'dist' ? dirname(up) : up;
}

/** The built storage node, as `npm start` runs it (no tsx loader: less memory). */
export function storageNodeEntry(): string {
  return join(projectRoot(), 'dist', 'storage-node', 'main.js');
}

/** The built gateway, as `npm start` runs it. */
export function gatewayEntry(): string {
  return join(projectRoot(), 'dist', 'gateway', 'main.js');
}

export async function getCluster(gateway: string, dispatcher?: Dispatcher): Promise<ClusterState> {
  const res = await request(`${gateway}/api/cluster`, {
    ...(dispatcher ? { dispatcher } : {}),
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) {
    throw new Error(`GET ${gateway}/api/cluster → ${res.statusCode} ${text.slice(0, 200)}`);
  }
  return JSON.parse(text) as ClusterState;
}

export function statusOf(state: ClusterState, nodeId: string): NodeStatus | undefined {
  return state.nodes.find((n) => n.id === nodeId)?.status;
}

/**
 * Checks that the gateway answers, is ready, and sees every node online;
 * throws ClusterNotReadyError (with what to do) otherwise.
 */
export async function requireHealthyCluster(
  gateway: string,
  dispatcher?: Dispatcher,
): Promise<ClusterState> {
  let state: ClusterState;
  try {
    state = await getCluster(gateway, dispatcher);
  } catch (err) {
    throw new ClusterNotReadyError(
      `the Trove gateway does not answer at ${gateway} (${(err as Error).message}).\n` +
        'Start the cluster first, in another terminal:  npm start\n' +
        '(with the same STORAGE_DIR, and --gateway <url> if it is not on port 8080).',
    );
  }
  const down = state.nodes.filter((n) => n.status !== 'online');
  if (down.length > 0) {
    throw new ClusterNotReadyError(
      `not every storage node is online: ${down.map((n) => `${n.id} ${n.status}`).join(', ')}.\n` +
        'Bring them back first (npm run storage-node -- --id <node>) and wait for the next probe.',
    );
  }
  return state;
}

/** The pid in STORAGE_DIR/run/<name>.pid, if the file is there and sane. */
export function readPid(storageDir: string, name: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFilePath(storageDir, name), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Running, and not a zombie waiting for its parent (a SIGKILLed child of `npm start`, briefly). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/**
 * The pid of storage node `nodeId`, from its pid file, checked against the
 * process's command line: a stale pid file must never get an unrelated
 * process (the pid may have been reused) killed.
 */
export function storageNodePid(storageDir: string, nodeId: string): number {
  const file = pidFilePath(storageDir, nodeId);
  const pid = readPid(storageDir, nodeId);
  if (pid === undefined || !isRunning(pid)) {
    throw new ClusterNotReadyError(
      `${nodeId}: no running process in ${file} (is STORAGE_DIR the one the cluster runs with?)`,
    );
  }
  const cmd = commandLine(pid);
  if (!cmd.includes('storage-node/main.') || !cmd.includes(nodeId)) {
    throw new ClusterNotReadyError(
      `${nodeId}: ${file} names pid ${pid}, which runs "${cmd.slice(0, 100)}", not that storage node`,
    );
  }
  return pid;
}

/** `kill -9` a storage node by its pid file; resolves once the process is gone. */
export async function killNode(storageDir: string, nodeId: string): Promise<number> {
  const pid = storageNodePid(storageDir, nodeId);
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isRunning(pid); i++) await sleep(20);
  if (isRunning(pid)) throw new Error(`${nodeId} (pid ${pid}) still runs 2 s after SIGKILL`);
  return pid;
}

/** Removes the node's whole data directory: a disk replaced by an empty one. */
export async function wipeNode(nodeId: string): Promise<string> {
  const dir = nodeDataDir(nodeId);
  await rm(dir, { recursive: true, force: true });
  return dir;
}

export interface Restarted {
  pid: number;
  /** Where its stdout and stderr go. */
  log: string;
}

/**
 * Starts `node dist/storage-node/main.js --id <node>` on its own: detached,
 * environment inherited, output appended to STORAGE_DIR/run/<node>.<tag>.log,
 * unreferenced, so it outlives this script as `npm start`'s children do
 * theirs. Resolves once the node answers /health and has written its pid file.
 */
export async function restartNode(
  storageDir: string,
  node: NodeAddress,
  tag: string,
  timeoutMs = 30_000,
): Promise<Restarted> {
  return startNode(storageDir, node, tag, { timeoutMs });
}

/**
 * Starts a storage node as restartNode does, with `env` added to this
 * process's environment (a node not in NODES needs its NODE_PORT).
 */
export async function startNode(
  storageDir: string,
  node: NodeAddress,
  tag: string,
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Restarted> {
  const entry = storageNodeEntry();
  if (!existsSync(entry))
    throw new Error(`${entry} is missing: run npm run build (npm start does)`);
  const log = join(storageDir, 'run', `${node.id}.${tag}.log`);
  mkdirSync(dirname(log), { recursive: true });
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [entry, '--id', node.id], {
    detached: true,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd); // the child has its own copy
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${node.id} (see ${log})`);
  await waitFor(
    `${node.id} to answer /health (log: ${log})`,
    async () => {
      if (!isRunning(pid)) throw new Error(`${node.id} exited at start-up; see ${log}`);
      return readPid(storageDir, node.id) === pid && (await answersHealth(node.url));
    },
    opts.timeoutMs ?? 30_000,
    100,
  );
  return { pid, log };
}

/**
 * Stops a storage node by its pid file (checked against its command line):
 * SIGTERM, so it finishes its writes and removes its pid file, then SIGKILL
 * if it still runs after `graceMs`. Resolves with its pid once it is gone.
 */
export async function stopNode(
  storageDir: string,
  nodeId: string,
  graceMs = 10_000,
): Promise<number> {
  const pid = storageNodePid(storageDir, nodeId);
  process.kill(pid, 'SIGTERM');
  const deadline = performance.now() + graceMs;
  while (isRunning(pid) && performance.now() < deadline) await sleep(50);
  if (isRunning(pid)) {
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && isRunning(pid); i++) await sleep(20);
    if (isRunning(pid)) throw new Error(`${nodeId} (pid ${pid}) still runs after SIGKILL`);
  }
  return pid;
}

async function answersHealth(url: string): Promise<boolean> {
  try {
    const res = await request(`${url}/health`, { headersTimeout: 1000, bodyTimeout: 1000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/**
 * Polls `probe` every `intervalMs` until it returns something truthy, and
 * returns that; throws when `timeoutMs` passes first. A probe that throws
 * ends the wait with its error.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false | null>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (performance.now() >= deadline) {
      throw new Error(`timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

/** A blob's file name on a node's disk: <key>@<sha256>. */
const BLOB_NAME = /^([A-Za-z0-9._-]{1,160})@([0-9a-f]{64})$/;

/** A blob file on a node's disk: blobs/<2 hex>/<key>@<sha256>. */
export interface BlobFile {
  path: string;
  /** The sha256 in its name: what the node claims, not yet checked. */
  sha256: string;
}

/**
 * Every committed blob on a node's disk, by key, read from the directory
 * names alone (the node keeps the checksum in the file name). Walking the 256
 * leaf directories rather than recomputing the node's leaf hash keeps this
 * independent of the node's layout code.
 */
export async function blobsOnDisk(dataDir: string): Promise<Map<string, BlobFile>> {
  const root = join(dataDir, 'blobs');
  const blobs = new Map<string, BlobFile>();
  const leaves = await readdir(root).catch(() => [] as string[]);
  for (const leaf of leaves) {
    const names = await readdir(join(root, leaf)).catch(() => [] as string[]);
    for (const name of names) {
      // Only the blob itself: a large blob's block sums (`<key>@<sha256>.blocks`) sit beside it.
      const match = BLOB_NAME.exec(name);
      if (match) blobs.set(match[1]!, { path: join(root, leaf, name), sha256: match[2]! });
    }
  }
  return blobs;
}

/** Keys of `expected` (key → sha256) the disk lacks, or holds under another sha256. */
export async function missingOnDisk(
  dataDir: string,
  expected: Map<string, string>,
): Promise<string[]> {
  const disk = await blobsOnDisk(dataDir);
  return [...expected].filter(([key, sha]) => disk.get(key)?.sha256 !== sha).map(([key]) => key);
}

/**
 * Reads and hashes every expected blob on the disk; returns one line per
 * problem (absent, or bytes that do not hash to the expected sha256).
 */
export async function verifyOnDisk(
  dataDir: string,
  expected: Map<string, string>,
): Promise<string[]> {
  const disk = await blobsOnDisk(dataDir);
  const problems: string[] = [];
  for (const [key, sha] of expected) {
    const file = disk.get(key);
    if (!file) {
      problems.push(`${key}: no blob in ${join(dataDir, 'blobs')}`);
      continue;
    }
    const actual = await hashFile(file.path).catch((err: Error) => `unreadable (${err.message})`);
    if (actual !== sha) problems.push(`${file.path}: sha256 ${actual}, expected ${sha}`);
  }
  return problems;
}

export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/** Runs `task` over `items` with at most `concurrency` at once. */
export async function forEachLimited<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) await task(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

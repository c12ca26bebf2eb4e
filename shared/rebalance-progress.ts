/**
 * Where the rebalance stands, shared through one Redis hash per cluster:
 * the worker that runs a pass writes it after every page of files, and every
 * gateway reads it for GET /api/cluster and the browser page. It also holds
 * the pass's cursor, so a pass cut short (its worker killed) resumes where it
 * was instead of starting over.
 */
import type { Redis } from 'ioredis';

/**
 * `running`: a pass is under way (or its worker died: the next one resumes it);
 * `done`: the last pass found every replica where the layout places it;
 * `incomplete`: it left some for later (a node down, a copy failed), retried soon.
 */
export type RebalanceState = 'running' | 'done' | 'incomplete';

export interface RebalanceProgress {
  state: RebalanceState;
  /** The layout version the pass places files for. */
  layoutVersion: number;
  /** The last file id the pass is through with ('' before the first). */
  cursor: string;
  /** Live files when this pass started, and files it looked at so far. */
  total: number;
  scanned: number;
  /** Replicas copied to their new node, surplus replicas removed, and the bytes copied, by every pass for this layout version. */
  moved: number;
  removed: number;
  bytes: number;
  /** Blobs the pass could not place yet (left for the next pass). */
  left: number;
  startedAt: number;
  updatedAt: number;
}

const NUMBERS = [
  'layoutVersion',
  'total',
  'scanned',
  'moved',
  'removed',
  'bytes',
  'left',
  'startedAt',
  'updatedAt',
] as const;

export function rebalanceKey(prefix: string): string {
  return `${prefix}:rebalance`;
}

function requestKey(prefix: string): string {
  return `${prefix}:rebalance:requested`;
}

/**
 * Asks for a pass soon: a gateway stored a file off its placement (a node
 * was offline, or the layout changed while the upload ran). Fire and forget:
 * the scheduled pass catches what a lost request misses.
 */
export function requestRebalance(redis: Redis, prefix: string): void {
  void redis.set(requestKey(prefix), String(Date.now())).catch(() => undefined);
}

/** True (once) when a pass was asked for since the last call. */
export async function takeRebalanceRequest(redis: Redis, prefix: string): Promise<boolean> {
  return (await redis.getdel(requestKey(prefix))) !== null;
}

/** The progress of the newest pass, or undefined when none ever ran. */
export async function readProgress(
  redis: Redis,
  prefix: string,
): Promise<RebalanceProgress | undefined> {
  const hash = await redis.hgetall(rebalanceKey(prefix));
  if (!hash.state) return undefined;
  const progress = { state: hash.state as RebalanceState, cursor: hash.cursor ?? '' };
  for (const field of NUMBERS)
    (progress as Record<string, unknown>)[field] = Number(hash[field] ?? 0);
  return progress as RebalanceProgress;
}

export async function writeProgress(
  redis: Redis,
  prefix: string,
  progress: RebalanceProgress,
): Promise<void> {
  await redis.hset(rebalanceKey(prefix), { ...progress });
}

/** Objects and bytes per second since the pass started (0 before a second has passed). */
export function rebalanceRates(p: RebalanceProgress, now = Date.now()) {
  const end = p.state === 'running' ? now : p.updatedAt;
  const seconds = (end - p.startedAt) / 1000;
  if (seconds < 1) return { objectsPerSecond: 0, bytesPerSecond: 0 };
  return {
    objectsPerSecond: Math.round((p.moved / seconds) * 10) / 10,
    bytesPerSecond: Math.round(p.bytes / seconds),
  };
}

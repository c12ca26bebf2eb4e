/**
 * What every check shares: the result types, and the history regrouped by
 * file. Only files of an `ok` upload are known (the others have no id the
 * client ever learnt), so ops about any other id are left out here.
 */
import type { FinalFile, FinalState, Op } from '../history.js';

export type CheckName =
  'no-lost-uploads' | 'limits' | 'expiry-and-delete' | 'right-bytes' | 'redundancy';

export interface CheckOptions {
  /** How far a gateway's clock may be off the client's (docs state it): a download that began more than this after expires_at must not return bytes. */
  clockSlackMs: number;
  /** sha256 hex of bytes [start, endInclusive] of the content uploaded under `key` (the runner regenerates/keeps the content). */
  contentDigest(key: string, start: number, endInclusive: number): string;
}

export interface Violation {
  check: CheckName;
  file?: string;
  key?: string;
  message: string;
  /** `Op.index` values to show as the excerpt. */
  ops: number[];
}

export interface CheckResult {
  check: CheckName;
  title: string;
  /** How many things were checked. */
  checked: number;
  violations: Violation[];
  /** One line more for the report (what was found, how long something took). */
  detail?: string;
}

/** An `ok` upload and the ops about its file, each list in history (invoke) order. */
export interface KnownFile {
  id: string;
  upload: Op;
  downloads: Op[];
  thumbnails: Op[];
  deletes: Op[];
  /** Invoke times of the downloads that may have taken one (`ok` or `info`), ascending. */
  spendInvokes: number[];
  /** The file as the metadata store told after healing, if it knows it. */
  final: FinalFile | undefined;
}

export interface Context {
  /** In upload order. */
  files: KnownFile[];
  finalState: FinalState;
  opts: CheckOptions;
  /** The latest outcome in the history: the final state was read after it. */
  end: number;
}

export function buildContext(history: Op[], finalState: FinalState, opts: CheckOptions): Context {
  const ops = [...history].sort((a, b) => a.index - b.index);
  const byId = new Map<string, KnownFile>();
  for (const op of ops) {
    if (op.kind !== 'upload' || op.outcome !== 'ok' || !op.file || byId.has(op.file)) continue;
    byId.set(op.file, {
      id: op.file,
      upload: op,
      downloads: [],
      thumbnails: [],
      deletes: [],
      spendInvokes: [],
      final: undefined,
    });
  }
  for (const op of ops) {
    const f = op.kind === 'upload' || !op.file ? undefined : byId.get(op.file);
    if (!f) continue;
    if (op.kind === 'download') f.downloads.push(op);
    else if (op.kind === 'thumbnail') f.thumbnails.push(op);
    else f.deletes.push(op);
  }
  for (const f of byId.values()) {
    f.spendInvokes = f.downloads
      .filter(mayHaveSpent)
      .map((op) => op.invoke)
      .sort((a, b) => a - b);
  }
  for (const ff of finalState.files) {
    const f = byId.get(ff.file);
    if (f) f.final = ff;
  }
  const end = ops.reduce((latest, op) => Math.max(latest, op.complete), 0);
  return { files: [...byId.values()], finalState, opts, end };
}

/** A download that took one of the file's downloads, or may have (an unknown outcome). */
export function mayHaveSpent(op: Op): boolean {
  return op.kind === 'download' && op.outcome !== 'fail';
}

export const maxDownloadsOf = (f: KnownFile): number => f.upload.maxDownloads ?? 0;

/** Downloads that may have been taken by requests sent at or before `t`. */
export function spentBy(f: KnownFile, t: number): number {
  return countAtMost(f.spendInvokes, t);
}

/** Whether a delete (done, or maybe done) had been sent by `t`. */
export function deleteSentBy(f: KnownFile, t: number): boolean {
  return f.deletes.some((d) => d.outcome !== 'fail' && d.invoke <= t);
}

/** Whether a gateway whose clock is at most the slack ahead could see the file expired at `t`. */
export function mayBeExpiredAt(ctx: Context, f: KnownFile, t: number): boolean {
  const expiresAt = f.upload.expiresAt;
  return expiresAt !== undefined && t >= expiresAt - ctx.opts.clockSlackMs;
}

/** How many of the ascending `sorted` are ≤ t. */
export function countAtMost(sorted: number[], t: number): number {
  return countBelow(sorted, t, true);
}

/** How many of the ascending `sorted` are < t (≤ t when `inclusive`): a binary search. */
export function countBelow(sorted: number[], t: number, inclusive = false): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v < t || (inclusive && v === t)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A violation about file `f`, showing `ops` (the upload is added by the excerpt). */
export function violation(check: CheckName, f: KnownFile, message: string, ops: Op[]): Violation {
  return { check, file: f.id, key: f.upload.key, message, ops: ops.map((op) => op.index) };
}

/** How an op answered, in a few words: `410 FILE_EXPIRED`, `info (timeout)`. */
export function answer(op: Op): string {
  if (op.status === undefined) return `${op.outcome}${op.error ? ` (${op.error})` : ''}`;
  return `${op.status}${op.code ? ` ${op.code}` : ''}`;
}

export const secondsAfter = (t: number, t0: number): string => `${((t - t0) / 1000).toFixed(3)} s`;

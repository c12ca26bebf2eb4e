/**
 * no-lost-uploads: an acknowledged upload is never lost. After healing, each
 * one reads back whole and right, unless the history explains why not
 * (deleted, expired, used up), or the read could not be served but the
 * metadata and a verified copy are there. During the run no file may be
 * denied for a reason the history cannot explain either: a 404 means its
 * metadata was lost, a 410 FILE_DELETED with no delete sent is a phantom.
 *
 * A 404 after a delete or the expiry is fair: the worker purges tombstones.
 */
import type { Op } from '../history.js';
import {
  answer,
  deleteSentBy,
  maxDownloadsOf,
  mayBeExpiredAt,
  secondsAfter,
  spentBy,
  violation,
  type CheckResult,
  type Context,
  type KnownFile,
  type Violation,
} from './context.js';
import { bodyProblem } from './right-bytes.js';

/** What became of an upload, by the end of the history. */
type Fate =
  'read back' | 'deleted' | 'expired' | 'used up' | 'not readable, copies verified' | 'lost';

const FATES: Fate[] = [
  'read back',
  'deleted',
  'expired',
  'used up',
  'not readable, copies verified',
  'lost',
];

export function checkNoLostUploads(ctx: Context): CheckResult {
  const violations: Violation[] = [];
  const counts = new Map<Fate, number>();
  for (const f of ctx.files) {
    const { fate, found } = judge(ctx, f);
    violations.push(...found);
    counts.set(fate, (counts.get(fate) ?? 0) + 1);
  }
  const detail = FATES.filter((fate) => counts.has(fate))
    .map((fate) => `${counts.get(fate)} ${fate}`)
    .join(', ');
  return {
    check: 'no-lost-uploads',
    title: 'No acknowledged upload is lost',
    checked: ctx.files.length,
    violations,
    ...(detail ? { detail } : {}),
  };
}

function judge(ctx: Context, f: KnownFile): { fate: Fate; found: Violation[] } {
  const found: Violation[] = [];
  for (const op of [...f.downloads, ...f.thumbnails]) {
    const problem = unfairRefusal(ctx, f, op);
    if (problem) found.push(violation('no-lost-uploads', f, problem, [op]));
  }
  const finals = f.downloads.filter((op) => op.phase === 'final');
  for (const op of finals) {
    const problem = op.outcome === 'ok' ? bodyProblem(ctx, f, op) : undefined;
    if (problem)
      found.push(violation('no-lost-uploads', f, `read after healing: ${problem}`, [op]));
  }
  if (finals.some((op) => readsIntact(ctx, f, op))) return { fate: 'read back', found };
  const fate =
    finals.map((op) => fairRefusal(ctx, f, op)).find((x) => x !== undefined) ?? excuse(ctx, f);
  if (fate) return { fate, found };
  const finalIndexes = new Set(finals.map((op) => op.index));
  if (!found.some((v) => v.ops.some((i) => finalIndexes.has(i)))) {
    found.push(violation('no-lost-uploads', f, lostMessage(f, finals), finals));
  }
  return { fate: 'lost', found };
}

/** A final read that got the whole body it asked for, right. */
function readsIntact(ctx: Context, f: KnownFile, op: Op): boolean {
  return op.outcome === 'ok' && op.bodyComplete !== false && !bodyProblem(ctx, f, op);
}

/** Why the file need not read back though no final read explained it. */
function excuse(ctx: Context, f: KnownFile): Fate | undefined {
  if (deleteSentBy(f, Infinity)) return 'deleted';
  if (mayBeExpiredAt(ctx, f, ctx.end)) return 'expired';
  if (f.final && f.final.verified.length > 0) return 'not readable, copies verified';
  // Used up, its bytes need not be served any more, but its metadata must stay.
  const n = maxDownloadsOf(f);
  if (f.final && n > 0 && f.spendInvokes.length >= n) return 'used up';
  return undefined;
}

function lostMessage(f: KnownFile, finals: Op[]): string {
  const reads =
    finals.length === 0
      ? 'never read after healing'
      : `not readable after healing (${finals.map(answer).join(', ')})`;
  const where = f.final ? 'no verified copy left' : 'unknown to the metadata store';
  return `acknowledged upload lost: ${reads}, ${where}`;
}

const isNotFound = (op: Op): boolean =>
  op.status === 404 &&
  (op.code === 'FILE_NOT_FOUND' || (op.code === undefined && op.kind === 'download'));

/** The fate a refusal proves, when the history justifies it. */
function fairRefusal(ctx: Context, f: KnownFile, op: Op): Fate | undefined {
  const deleted = deleteSentBy(f, op.complete);
  const expired = mayBeExpiredAt(ctx, f, op.complete);
  if (isNotFound(op)) return deleted ? 'deleted' : expired ? 'expired' : undefined;
  if (op.status !== 410) return undefined;
  if (op.code === 'FILE_DELETED' && deleted) return 'deleted';
  if (op.code === 'FILE_EXPIRED' && expired) return 'expired';
  const n = maxDownloadsOf(f);
  if (op.code === 'DOWNLOAD_LIMIT_REACHED' && n > 0 && spentBy(f, op.complete) >= n) {
    return 'used up';
  }
  return undefined;
}

/** What is wrong with a 404 or 410 the history does not justify (run-phase used-up is the limits check's). */
function unfairRefusal(ctx: Context, f: KnownFile, op: Op): string | undefined {
  if (op.invoke < f.upload.complete || !(isNotFound(op) || op.status === 410)) return undefined;
  if (op.code === 'DOWNLOAD_LIMIT_REACHED' && op.phase !== 'final') return undefined;
  if (fairRefusal(ctx, f, op)) return undefined;
  const when = op.phase === 'final' ? 'after healing' : 'during the run';
  switch (op.status === 404 ? 'FILE_NOT_FOUND' : op.code) {
    case 'FILE_NOT_FOUND':
      return `${op.kind} ${when} answered 404: the file's metadata is lost`;
    case 'FILE_DELETED':
      return `${op.kind} ${when} answered 410 FILE_DELETED, but no delete had been sent`;
    case 'FILE_EXPIRED': {
      const early = secondsAfter(f.upload.expiresAt ?? 0, op.complete);
      return `${op.kind} ${when} answered 410 FILE_EXPIRED ${early} before expires_at (slack ${ctx.opts.clockSlackMs} ms)`;
    }
    case 'DOWNLOAD_LIMIT_REACHED': {
      const spent = `${spentBy(f, op.complete)} of ${maxDownloadsOf(f)}`;
      return `answered 410 DOWNLOAD_LIMIT_REACHED after healing, but only ${spent} downloads were sent`;
    }
    default:
      return `${op.kind} ${when} answered ${answer(op)}`;
  }
}

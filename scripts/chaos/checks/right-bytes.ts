/**
 * right-bytes: every byte served is a byte of the upload, at its place. A
 * body cut short is checked as far as it came (the cut is a fault, a wrong
 * byte is corruption). Thumbnails are checked against their own ETag, and a
 * file has one thumbnail whichever replica or gateway serves it.
 */
import type { Op } from '../history.js';
import {
  violation,
  type CheckResult,
  type Context,
  type KnownFile,
  type Violation,
} from './context.js';

/** What is wrong with the body of `ok` download `op`, or undefined when it is right. */
export function bodyProblem(ctx: Context, f: KnownFile, op: Op): string | undefined {
  const size = f.upload.size ?? 0;
  // A 200 is the whole file, even to a Range request (a server may ignore one).
  const ranged = op.status === 206 && op.range !== undefined;
  const start = ranged ? op.range![0] : 0;
  const end = ranged ? Math.min(op.range![1], size - 1) : size - 1;
  const length = end - start + 1;
  const what = ranged ? `bytes ${start}-${end}` : 'the whole file';
  if (op.sha256 === undefined) return 'no body sha256 recorded';
  if (op.bodyComplete === false) {
    const got = op.bytes ?? 0;
    if (got === 0) return undefined;
    if (got > length) return `cut body of ${got} B is longer than the ${length} B of ${what}`;
    const want = ctx.opts.contentDigest(f.upload.key, start, start + got - 1);
    return op.sha256 === want
      ? undefined
      : `the first ${got} B of ${what} (cut) are not the upload's`;
  }
  if (op.bytes !== undefined && op.bytes !== length) {
    return `${op.bytes} B received for ${what}, ${length} B expected`;
  }
  const want =
    !ranged && f.upload.sha256 !== undefined
      ? f.upload.sha256
      : ctx.opts.contentDigest(f.upload.key, start, end);
  return op.sha256 === want
    ? undefined
    : `${what}: sha256 ${short(op.sha256)}, uploaded ${short(want)}`;
}

export function checkRightBytes(ctx: Context): CheckResult {
  const violations: Violation[] = [];
  let checked = 0;
  for (const f of ctx.files) {
    for (const op of f.downloads) {
      if (op.outcome !== 'ok') continue;
      checked++;
      const problem = bodyProblem(ctx, f, op);
      if (problem) violations.push(violation('right-bytes', f, problem, [op]));
    }
    const thumbs = f.thumbnails.filter((op) => op.outcome === 'ok');
    checked += thumbs.length;
    violations.push(...thumbnailViolations(f, thumbs));
  }
  return {
    check: 'right-bytes',
    title: 'Every byte served is the uploaded byte',
    checked,
    violations,
  };
}

/** Each complete thumbnail matches its ETag, and all of a file's are the same bytes. */
function thumbnailViolations(f: KnownFile, thumbs: Op[]): Violation[] {
  const out: Violation[] = [];
  const firstBySha = new Map<string, Op>();
  for (const op of thumbs) {
    if (op.bodyComplete === false || op.sha256 === undefined) continue;
    const etag = op.etag?.replace(/^W\//, '').replace(/"/g, '');
    if (etag !== op.sha256) {
      const msg = `thumbnail body sha256 ${short(op.sha256)} but ETag ${op.etag ?? '(none)'}`;
      out.push(violation('right-bytes', f, msg, [op]));
    }
    if (!firstBySha.has(op.sha256)) firstBySha.set(op.sha256, op);
  }
  if (firstBySha.size > 1) {
    const shas = [...firstBySha.keys()].map(short).join(', ');
    const msg = `${firstBySha.size} different thumbnails served: ${shas}`;
    out.push(violation('right-bytes', f, msg, [...firstBySha.values()]));
  }
  return out;
}

export const short = (sha: string): string => `${sha.slice(0, 12)}…`;

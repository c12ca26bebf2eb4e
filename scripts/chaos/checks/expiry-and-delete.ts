/**
 * expiry-and-delete: no bytes for a request sent after the file expired
 * (beyond what a gateway's clock skew excuses) or after its delete was
 * acknowledged. A download that began before may end after: it was granted
 * in time.
 */
import type { Op } from '../history.js';
import {
  secondsAfter,
  violation,
  type CheckResult,
  type Context,
  type KnownFile,
  type Violation,
} from './context.js';

export function checkExpiryAndDelete(ctx: Context): CheckResult {
  const violations: Violation[] = [];
  let checked = 0;
  for (const f of ctx.files) {
    const reads = [...f.downloads, ...f.thumbnails];
    checked += reads.length;
    const deletedAt = firstAcknowledgedDelete(f);
    for (const op of reads) {
      if (op.outcome !== 'ok') continue;
      const late = lateness(ctx, f, op, deletedAt);
      if (late)
        violations.push(
          violation('expiry-and-delete', f, late, deletedAt ? [deletedAt, op] : [op]),
        );
    }
  }
  return {
    check: 'expiry-and-delete',
    title: 'No bytes after expiry or delete',
    checked,
    violations,
  };
}

/** The `ok` delete that completed first: from then on the file must be gone. */
function firstAcknowledgedDelete(f: KnownFile): Op | undefined {
  let first: Op | undefined;
  for (const d of f.deletes) {
    if (d.outcome === 'ok' && (!first || d.complete < first.complete)) first = d;
  }
  return first;
}

/** Why `ok` read `op` came too late to get bytes, or undefined. */
function lateness(
  ctx: Context,
  f: KnownFile,
  op: Op,
  deletedAt: Op | undefined,
): string | undefined {
  const expiresAt = f.upload.expiresAt;
  if (expiresAt !== undefined && op.invoke > expiresAt + ctx.opts.clockSlackMs) {
    return `${op.kind} sent ${secondsAfter(op.invoke, expiresAt)} after expires_at got ${op.status ?? 'ok'} (slack ${ctx.opts.clockSlackMs} ms)`;
  }
  if (deletedAt && op.invoke > deletedAt.complete) {
    return `${op.kind} sent ${secondsAfter(op.invoke, deletedAt.complete)} after the delete was acknowledged got ${op.status ?? 'ok'}`;
  }
  return undefined;
}

/**
 * limits: a file with max_downloads N grants at most N downloads, and the
 * X-Downloads-Left of each grant tells which one it was (the k-th says N-k).
 *
 * The counter may hand a download back: a request that took one and then got
 * no byte from any replica (a 503, or a client that left) returns it, and the
 * next request gets the same ordinal again (gateway/download/download-counter.ts).
 * Only `info` downloads can have done that, so a repeated ordinal, or one not
 * above an earlier one's, is a violation only beyond what they explain.
 */
import type { Op } from '../history.js';
import {
  countBelow,
  maxDownloadsOf,
  spentBy,
  violation,
  type CheckResult,
  type Context,
  type KnownFile,
  type Violation,
} from './context.js';

/** An `ok` download with its ordinal k = N - X-Downloads-Left. */
interface Grant {
  op: Op;
  k: number;
}

const LIMIT = 'DOWNLOAD_LIMIT_REACHED';

export function checkLimits(ctx: Context): CheckResult {
  const violations: Violation[] = [];
  let checked = 0;
  for (const f of ctx.files) {
    if (maxDownloadsOf(f) === 0) {
      violations.push(...unlimitedViolations(f));
      continue;
    }
    checked++;
    violations.push(...limitedViolations(f));
  }
  return { check: 'limits', title: 'Download limits hold', checked, violations };
}

/** An unlimited file says so on every grant and is never used up. */
function unlimitedViolations(f: KnownFile): Violation[] {
  const out: Violation[] = [];
  for (const op of f.downloads) {
    if (op.outcome === 'ok' && op.downloadsLeft !== null) {
      const msg = `unlimited file granted with X-Downloads-Left ${op.downloadsLeft ?? '(none)'}`;
      out.push(violation('limits', f, msg, [op]));
    }
    if (op.code === LIMIT)
      out.push(violation('limits', f, `unlimited file refused as used up`, [op]));
  }
  return out;
}

function limitedViolations(f: KnownFile): Violation[] {
  const n = maxDownloadsOf(f);
  const oks = f.downloads.filter((op) => op.outcome === 'ok');
  const infos = f.downloads.filter((op) => op.outcome === 'info');
  const out: Violation[] = [];
  if (oks.length > n) {
    out.push(violation('limits', f, `${oks.length} downloads granted, the limit is ${n}`, oks));
  }
  const grants: Grant[] = [];
  for (const op of oks) {
    const left = op.downloadsLeft;
    if (typeof left !== 'number' || !Number.isInteger(left) || left < 0 || left > n - 1) {
      const msg = `X-Downloads-Left ${left ?? '(none)'} is not within 0…${n - 1} (max_downloads ${n})`;
      out.push(violation('limits', f, msg, [op]));
      continue;
    }
    const grant = { op, k: n - left };
    grants.push(grant);
    const sent = spentBy(f, op.complete);
    if (sent < grant.k) {
      const msg = `download #${grant.k} granted when only ${sent} download(s) had been sent`;
      out.push(violation('limits', f, msg, [op]));
    }
  }
  out.push(...repeatedOrdinals(f, grants, infos.length));
  out.push(...outOfOrder(f, grants, infos));
  out.push(...earlyRefusals(f, n));
  out.push(...finalCount(f, oks.length, infos.length));
  return out;
}

/** Every hand-back lets one ordinal be granted twice: more repeats than `info` downloads is a bug. */
function repeatedOrdinals(f: KnownFile, grants: Grant[], handBacks: number): Violation[] {
  const byK = new Map<number, Op[]>();
  for (const g of grants) {
    const ops = byK.get(g.k);
    if (ops) ops.push(g.op);
    else byK.set(g.k, [g.op]);
  }
  const repeated = [...byK].filter(([, ops]) => ops.length > 1);
  const repeats = repeated.reduce((sum, [, ops]) => sum + ops.length - 1, 0);
  if (repeats <= handBacks) return [];
  return repeated.map(([k, ops]) => {
    const msg = `download #${k} granted ${ops.length} times: more repeats than the ${handBacks} download(s) of unknown outcome could hand back`;
    return violation('limits', f, msg, ops);
  });
}

/**
 * Real-time order: when A ended before B began, B's take came after A's, so
 * k(B) ≥ k(A) + 1 − (hand-backs between the two). A hand-back between them
 * comes from an `info` download sent before B ended and not answered before A
 * began (one left unanswered may hand back any time later). Per B, the worst
 * A among those ended before B began is found with a prefix maximum.
 */
function outOfOrder(f: KnownFile, grants: Grant[], infos: Op[]): Violation[] {
  const infoInvokes = infos.map((op) => op.invoke).sort((a, b) => a - b);
  const answeredBy = infos
    .filter((op) => op.status !== undefined)
    .map((op) => op.complete)
    .sort((a, b) => a - b);
  // Violation ⇔ score(A) ≥ k(B) + infos sent by B's end (ties counted in the server's favour).
  const score = (a: Grant) => a.k + countBelow(answeredBy, a.op.invoke);
  const byComplete = [...grants].sort((a, b) => a.op.complete - b.op.complete);
  const completes = byComplete.map((g) => g.op.complete);
  const worst: Grant[] = [];
  for (const g of byComplete) {
    const prev = worst[worst.length - 1];
    worst.push(prev && score(prev) >= score(g) ? prev : g);
  }
  const out: Violation[] = [];
  for (const b of grants) {
    const a = worst[countBelow(completes, b.op.invoke) - 1];
    if (!a || score(a) < b.k + countBelow(infoInvokes, b.op.complete, true)) continue;
    const msg = `download #${b.k} was sent after download #${a.k} had ended`;
    out.push(violation('limits', f, msg, [a.op, b.op]));
  }
  return out;
}

/** A 410 DOWNLOAD_LIMIT_REACHED needs N downloads sent before it. */
function earlyRefusals(f: KnownFile, n: number): Violation[] {
  const out: Violation[] = [];
  for (const op of f.downloads) {
    if (op.code !== LIMIT) continue;
    const sent = spentBy(f, op.complete);
    if (sent < n) {
      const msg = `refused as used up when only ${sent} of ${n} download(s) had been sent`;
      out.push(violation('limits', f, msg, [op]));
    }
  }
  return out;
}

/** The durable count is every grant kept, plus any unknown outcome that kept its own. */
function finalCount(f: KnownFile, oks: number, infos: number): Violation[] {
  const used = f.final?.downloadsUsed;
  if (used === undefined || (used >= oks && used <= oks + infos)) return [];
  const msg = `downloads_used ${used} after healing; ${oks} granted, ${infos} unknown`;
  return [violation('limits', f, msg, [])];
}

/**
 * The chaos drill's checker: Trove's promises judged from the history alone
 * (history.ts) and the final state read after healing, so a saved run can be
 * checked again. Pure and deterministic: no clock, no I/O.
 *
 * The checks (one file each under checks/):
 * - no-lost-uploads: an acknowledged upload reads back after healing, unless
 *   deleted, expired or used up; no unexplained 404 or 410 on the way.
 * - limits: at most max_downloads grants, each telling its place right.
 * - expiry-and-delete: no bytes for a request sent after expiry or a delete.
 * - right-bytes: every byte served is the uploaded one.
 * - redundancy: every live file fully copied again once healed.
 *
 * `info` ops (unknown outcome) count as maybe-happened wherever that matters.
 */
import type { FinalState, Op } from './history.js';
import {
  buildContext,
  type CheckOptions,
  type CheckResult,
  type Violation,
} from './checks/context.js';
import { checkExpiryAndDelete } from './checks/expiry-and-delete.js';
import { checkLimits } from './checks/limits.js';
import { checkNoLostUploads } from './checks/no-lost-uploads.js';
import { checkRedundancy } from './checks/redundancy.js';
import { checkRightBytes } from './checks/right-bytes.js';

export type { CheckName, CheckOptions, CheckResult, Violation } from './checks/context.js';

export function checkHistory(history: Op[], final: FinalState, opts: CheckOptions): CheckResult[] {
  const ctx = buildContext(history, final, opts);
  return [
    checkNoLostUploads(ctx),
    checkLimits(ctx),
    checkExpiryAndDelete(ctx),
    checkRightBytes(ctx),
    checkRedundancy(ctx),
  ];
}

/**
 * A few lines of the history around a violation (its ops, plus the file's
 * upload), for the report; times are from the history's first op.
 */
export function excerpt(history: Op[], violation: Violation, max = 12): string[] {
  const byIndex = new Map(history.map((op) => [op.index, op]));
  const upload = history.find(
    (op) => op.kind === 'upload' && op.outcome === 'ok' && op.file === violation.file,
  );
  const indexes = new Set(violation.ops);
  if (upload) indexes.add(upload.index);
  const ops = [...indexes]
    .sort((a, b) => a - b)
    .map((i) => byIndex.get(i))
    .filter((op): op is Op => op !== undefined);
  const t0 = history.reduce((first, op) => Math.min(first, op.invoke), Infinity);
  const lines = ops.slice(0, ops.length > max ? max - 1 : max).map((op) => formatOp(op, t0));
  if (ops.length > max) lines.push(`… ${ops.length - (max - 1)} more`);
  return lines;
}

/** One readable line: `+12.345s c3 download <file> range 0-99 (120 ms) → ok 206 left=1 100 B sha=ab12…`. */
export function formatOp(op: Op, t0: number): string {
  const at = `+${((op.invoke - t0) / 1000).toFixed(3)}s`;
  const took = `(${op.complete - op.invoke} ms)`;
  return `${at} ${op.process} ${describeRequest(op)} ${took} → ${describeOutcome(op, t0)}`;
}

function describeRequest(op: Op): string {
  if (op.kind === 'upload') {
    const ttl = op.ttlSeconds === undefined ? '' : ` ttl=${op.ttlSeconds}s`;
    return `upload ${op.key} ${op.size ?? '?'} B max=${op.maxDownloads ?? 0}${ttl}`;
  }
  const range = op.range ? ` range ${op.range[0]}-${op.range[1]}` : '';
  return `${op.kind} ${op.file ?? op.key}${range}`;
}

function describeOutcome(op: Op, t0: number): string {
  const parts: string[] = [op.outcome];
  if (op.status !== undefined) parts.push(String(op.status));
  if (op.code) parts.push(op.code);
  if (op.error) parts.push(`(${op.error})`);
  if (op.kind === 'upload' && op.file) parts.push(`file=${op.file}`);
  if (op.expiresAt !== undefined)
    parts.push(`expires=+${((op.expiresAt - t0) / 1000).toFixed(3)}s`);
  if (op.downloadsLeft !== undefined) parts.push(`left=${op.downloadsLeft ?? 'unlimited'}`);
  if (op.bytes !== undefined)
    parts.push(`${op.bytes} B${op.bodyComplete === false ? ' (cut)' : ''}`);
  if (op.sha256) parts.push(`sha=${op.sha256.slice(0, 8)}…`);
  if (op.kind === 'thumbnail' && op.etag) parts.push(`etag=${op.etag.slice(0, 9)}…`);
  return parts.join(' ');
}

/**
 * Each process's resident memory (VmRSS) at rest and at its peak: the figures
 * behind the "< 150 MB" target. "At rest" is read once the cluster is quiet
 * (the worker done with the images the uploads queued, then a few seconds
 * without a request), so it is what a process keeps, not the garbage of the
 * last transfer waiting for its collection.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { progress, safeJson, type BenchContext } from './context.js';

/** RSS in bytes by process name. */
export type RssByProcess = Record<string, number>;

/** RSS around one suite: at rest before it, its peak, and at rest after it. */
export interface MemoryAround {
  before: RssByProcess;
  peak: RssByProcess;
  after: RssByProcess;
}

/** Idle time before a resting figure: RSS measured 1-25 s after a transfer stayed within 1-2 MB from 3 s on. */
const IDLE_MS = 5000;
/** Longest wait for the worker to finish the images the uploads queued. */
const PROCESSING_TIMEOUT_MS = 5 * 60_000;

/**
 * Waits until the worker has finished with `ids` (their processing is no
 * longer pending), then for IDLE_MS, and answers every watched process's RSS.
 */
export async function restingRss(ctx: BenchContext, ids: string[] = []): Promise<RssByProcess> {
  await processed(ctx, ids);
  await sleep(IDLE_MS);
  return ctx.sampler.now();
}

async function processed(ctx: BenchContext, ids: string[]): Promise<void> {
  const deadline = Date.now() + PROCESSING_TIMEOUT_MS;
  let pending = ids;
  if (pending.length > 0) progress(`waiting for the worker to finish ${pending.length} upload(s)…`);
  while (pending.length > 0) {
    const states = await Promise.all(pending.map((id) => processingState(ctx, id)));
    pending = pending.filter((_, i) => states[i] === 'pending');
    if (pending.length === 0) return;
    if (Date.now() > deadline) {
      ctx.notes.push(
        `memory: ${pending.length} upload(s) still being processed after ${PROCESSING_TIMEOUT_MS / 1000} s; "at rest" was read anyway`,
      );
      return;
    }
    await sleep(500);
  }
}

/** `processing.state` of a file ('pending', 'done', 'failed'…); 'gone' once it is not there. */
async function processingState(ctx: BenchContext, id: string): Promise<string> {
  const res = await request(`${ctx.trove.origin}${ctx.trove.prefix}/files/${id}`, {
    dispatcher: ctx.dispatcher,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const body = safeJson(await res.body.text()) as { processing?: { state?: string } } | undefined;
  return res.statusCode === 200 ? (body?.processing?.state ?? 'none') : 'gone';
}

/** "peak 119 MB; at rest 86 → 99 MB", or why a figure is missing. */
export function memoryCell(m: MemoryAround, name: string): string {
  const mb = (v: number | undefined) => (v === undefined ? '?' : (v / 1e6).toFixed(0));
  if (m.peak[name] === undefined) return 'no sample';
  return `peak ${mb(m.peak[name])} MB; at rest ${mb(m.before[name])} → ${mb(m.after[name])} MB`;
}

/** The larger of a process's peak and its resting RSS after, in bytes (what the target is held to). */
export function worstOf(m: MemoryAround, name: string): number | undefined {
  const values = [m.peak[name], m.after[name]].filter((v): v is number => v !== undefined);
  return values.length > 0 ? Math.max(...values) : undefined;
}

/** The whole run, for the notes: each process at rest at its start and end, and its peak over the run. */
export function runMemoryNote(
  run: { restAtStart: RssByProcess; restAtEnd: RssByProcess; peak: RssByProcess },
  names: string[],
): string {
  const mb = (v: number | undefined) => (v === undefined ? '?' : (v / 1e6).toFixed(0));
  const each = names.map(
    (n) => `${n} ${mb(run.restAtStart[n])} → ${mb(run.restAtEnd[n])} (peak ${mb(run.peak[n])})`,
  );
  return `RSS at rest at the start → end of the run, MB: ${each.join(', ')}`;
}

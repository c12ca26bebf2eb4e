/**
 * Waiting for the worker to be done with an upload before the next timed one
 * starts. A large upload queues an image job, and a compressed copy after
 * the thumbnail fails on random bytes: each reads the whole file back, for
 * seconds, and would land in whichever upload is timed next.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { safeJson, type BenchContext } from './context.js';
import { cpuSeconds, processState } from './procfs.js';

/** Worker CPU per second of wall time under which it is at rest (idle: about 1 %). */
const IDLE_SHARE = 0.1;
/** Seconds at rest in a row: a compressed copy may start a moment after a failed thumbnail. */
const QUIET_SECONDS = 2;
const TIMEOUT_MS = 3 * 60_000;

/**
 * Until file `id`'s processing is no longer pending and the worker's CPU is
 * at rest. Returns at once when there is no worker or it is paused
 * (SIGSTOP); after TIMEOUT_MS with a note saying the next figure may hold
 * some of its work.
 */
export async function untilWorkerDone(
  ctx: BenchContext,
  id: string | undefined,
  what: string,
): Promise<void> {
  const worker = ctx.trove.processes().find((p) => p.name === 'worker');
  if (!worker || processState(worker.pid) === 'T') return;
  const deadline = performance.now() + TIMEOUT_MS;
  const late = () => performance.now() > deadline;
  while (id && !late() && (await processingOf(ctx, id)) === 'pending') await sleep(250);
  for (let quiet = 0; quiet < QUIET_SECONDS && !late();) {
    const before = cpuSeconds(worker.pid);
    await sleep(1000);
    quiet = cpuSeconds(worker.pid) - before < IDLE_SHARE ? quiet + 1 : 0;
  }
  if (late()) {
    ctx.notes.push(
      `${what}: the worker was still busy after ${TIMEOUT_MS / 1000} s; the next upload was timed anyway`,
    );
  }
}

/** `processing.state` of GET /files/:id ('pending', 'done', 'failed'…); undefined if unreadable. */
async function processingOf(ctx: BenchContext, id: string): Promise<string | undefined> {
  try {
    const res = await request(`${ctx.trove.origin}${ctx.trove.prefix}/files/${id}`, {
      dispatcher: ctx.dispatcher,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const body = safeJson(await res.body.text()) as { processing?: { state?: string } } | undefined;
    return res.statusCode === 200 ? body?.processing?.state : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Waiting for a cluster to be quiet after an upload, so that what is timed
 * next is the rebalance alone: every uploaded image processed (the worker
 * reads each original once for its variants), nothing under-replicated, no
 * repair queued or rebalance running, and the worker's CPU at rest.
 */
import { request } from 'undici';
import { forEachLimited, getCluster, waitFor } from '../cluster-control.js';
import type { BenchObject } from './bench-objects.js';
import { progress, safeJson, type BenchContext } from './context.js';
import { cpuSeconds, isAlive } from './procfs.js';

/**
 * Worker CPU per second of wall time under which it counts as at rest: an
 * idle worker takes about 1 %, 5-6 % under a sampling profiler (cpu-profile.mjs).
 */
const IDLE_SHARE = 0.1;

export async function waitSettled(
  ctx: BenchContext,
  objects: BenchObject[],
  workerPid: number | undefined,
): Promise<void> {
  progress(`rebalance: waiting for the worker to process the ${objects.length} uploads…`);
  let pending = objects.map((o) => o.key);
  await waitFor(
    'every upload to leave processing `pending`',
    async () => {
      const still: string[] = [];
      await forEachLimited(pending, 8, async (key) => {
        if ((await processingOf(ctx, key)) === 'pending') still.push(key);
      });
      pending = still;
      return pending.length === 0;
    },
    300_000,
    1000,
  );
  await waitFor(
    'no file under-replicated, no repair queued and no rebalance running',
    async () => {
      const s = await getCluster(ctx.trove.origin, ctx.dispatcher);
      return s.under_replicated === 0 && s.repairs.queued === 0 && s.rebalance?.state !== 'running';
    },
    120_000,
    250,
  );
  if (workerPid === undefined || !isAlive(workerPid)) {
    ctx.notes.push('rebalance: no worker pid file: its CPU was not waited for before the move');
    return;
  }
  // Two quiet seconds in a row: compressed-copy jobs may follow a failed thumbnail.
  let quiet = 0;
  await waitFor(
    `the worker (pid ${workerPid}) to be at rest`,
    async () => {
      const before = cpuSeconds(workerPid);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      quiet = cpuSeconds(workerPid) - before < IDLE_SHARE ? quiet + 1 : 0;
      return quiet >= 2;
    },
    180_000,
    0,
  );
}

/** `processing.state` of GET /files/:id. */
async function processingOf(ctx: BenchContext, id: string): Promise<string | undefined> {
  const res = await request(`${ctx.trove.origin}${ctx.trove.prefix}/files/${id}`, {
    dispatcher: ctx.dispatcher,
  });
  const body = safeJson(await res.body.text()) as { processing?: { state?: string } } | undefined;
  if (res.statusCode !== 200) throw new Error(`GET /files/${id} → ${res.statusCode}`);
  return body?.processing?.state;
}

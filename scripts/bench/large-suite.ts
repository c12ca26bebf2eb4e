/**
 * The large-object figures: one generated file, uploaded and downloaded in
 * several rounds, each side's transfers interleaved with the references'
 * so that drift on a noisy machine hits both. The median round is reported.
 *
 * Around them, each process's memory (memory.ts): at rest before, its peak
 * during the rounds and a last one with an upload and two downloads at once
 * (and while the worker deals with what they queued), and at rest after.
 * The uploads are deleted at the end, so a run does not leave gigabytes behind.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { findExecutable, progress, safeJson, settle, type BenchContext } from './context.js';
import {
  curlGet,
  deleteFiles,
  flushFile,
  getFile,
  putFile,
  threeFsyncedFiles,
  type Transfer,
  type Uploaded,
} from './large.js';
import { restingRss, type MemoryAround } from './memory.js';
import { writeLargeFile } from './payload.js';
import { costPer, metered, named, type CpuCost, type CpuUse, type Watched } from './procfs.js';

export type LargeKind =
  | 'trovePut'
  | 'nginxPut'
  | 'threeFsyncedFiles'
  | 'troveGet'
  | 'nginxGet'
  | 'troveGetCurl'
  | 'nginxGetCurl';

export interface LargeResults {
  bytes: number;
  sha256: string;
  /** MB/s (10^6 bytes per second) of each timed transfer, in order. */
  mbps: Partial<Record<LargeKind, number[]>>;
  /** Median of `mbps`. */
  median: Partial<Record<LargeKind, number>>;
  /**
   * CPU per MB, ms, of each timed transfer, in order: the serving processes
   * (Trove's, or nginx's; none for three-fsynced-files) and the bench (client).
   */
  cpuMsPerMb: Partial<Record<LargeKind, CpuCost[]>>;
  /** The round of `cpuMsPerMb` with the median server CPU (the lower one of an even count). */
  cpuMedian: Partial<Record<LargeKind, CpuCost>>;
  /** RSS of each process at rest before the transfers, at its peak during them, at rest after. */
  memory: MemoryAround;
  /** Seconds the upload and two downloads run at once took (undefined if one failed). */
  concurrentS: number | undefined;
}

const LARGE_NAME = 'large.jpg';

export async function runLargeSuite(ctx: BenchContext): Promise<LargeResults> {
  const { opts } = ctx;
  const bytes = opts.largeBytes;
  const source = join(ctx.www, LARGE_NAME);
  progress(`writing a ${bytes / 2 ** 20} MiB test file…`);
  const sha256 = await writeLargeFile(source, bytes);
  await settle();
  progress('each process at rest before the large transfers…');
  const before = await restingRss(ctx);
  ctx.sampler.setPhase('large');
  const results: LargeResults = {
    bytes,
    sha256,
    mbps: {},
    median: {},
    cpuMsPerMb: {},
    cpuMedian: {},
    memory: { before, peak: {}, after: {} },
    concurrentS: undefined,
  };
  const record = (kind: LargeKind, seconds: number, cpu: CpuUse) => {
    const mbps = bytes / seconds / 1e6;
    const cost = costPer(cpu, bytes / 1e6);
    (results.mbps[kind] ??= []).push(mbps);
    (results.cpuMsPerMb[kind] ??= []).push(cost);
    progress(
      `  ${kind}: ${mbps.toFixed(0)} MB/s, CPU ${cost.server.toFixed(2)} ms/MB (client ${cost.client.toFixed(2)})`,
    );
  };
  const troveProcesses = ctx.trove.processes;
  const nginxProcesses = named('nginx', () => ctx.nginx?.pids() ?? []);

  const uploads: Uploaded[] = [];
  const ids: string[] = [];
  for (let round = 1; round <= opts.largeRounds; round++) {
    progress(`large uploads, round ${round} of ${opts.largeRounds}`);
    await settle();
    const url = uploadUrl(ctx, `bench-large-${round}.jpg`);
    const { result: put, cpu } = await timed(ctx, troveProcesses, `PUT ${url}`, () =>
      putFile(url, source, bytes, ctx.dispatcher),
    );
    const uploaded = put && checkUpload(ctx, url, put, bytes, sha256);
    if (uploaded) {
      uploads.push(uploaded);
      ids.push(uploaded.id);
      record('trovePut', put.seconds, cpu);
    }

    if (ctx.nginx) {
      await settle();
      const davPath = join(ctx.www, 'dav', `large-${round}.jpg`);
      const davUrl = `${ctx.nginx.url}/dav/large-${round}.jpg`;
      const { result: dav, cpu } = await timed(ctx, nginxProcesses, `PUT ${davUrl}`, () =>
        putFile(davUrl, source, bytes, ctx.dispatcher),
      );
      if (dav && dav.status >= 200 && dav.status < 300) record('nginxPut', dav.seconds, cpu);
      else if (dav) ctx.failures.push(`PUT ${davUrl} → ${dav.status} ${dav.answer.slice(0, 200)}`);
      await flushFile(davPath).catch(() => {});
      await rm(davPath, { force: true });
    }

    await settle();
    try {
      const { result: floor, cpu } = await metered(
        () => [],
        () => threeFsyncedFiles(source, ctx.scratch),
      );
      record('threeFsyncedFiles', floor.seconds, cpu);
      await Promise.all(floor.paths.map((p) => rm(p, { force: true })));
    } catch (err) {
      ctx.failures.push(`three-fsynced-files in ${ctx.scratch}: ${(err as Error).message}`);
    }
  }

  const curl = findExecutable('curl');
  for (let round = 1; round <= opts.largeRounds; round++) {
    progress(`large downloads, round ${round} of ${opts.largeRounds}`);
    const id = ids[(round - 1) % Math.max(1, ids.length)];
    const troveUrl = id && `${ctx.trove.origin}${ctx.trove.prefix}/download/${id}`;
    const nginxUrl = ctx.nginx && `${ctx.nginx.url}/${LARGE_NAME}`;
    if (troveUrl) {
      await settle();
      const { result: got, cpu } = await timed(ctx, troveProcesses, `GET ${troveUrl}`, () =>
        getFile(troveUrl, ctx.dispatcher),
      );
      if (got && checkDownload(ctx, troveUrl, got, bytes, sha256))
        record('troveGet', got.seconds, cpu);
    }
    if (nginxUrl) {
      await settle();
      const { result: got, cpu } = await timed(ctx, nginxProcesses, `GET ${nginxUrl}`, () =>
        getFile(nginxUrl, ctx.dispatcher),
      );
      if (got && checkDownload(ctx, nginxUrl, got, bytes, sha256))
        record('nginxGet', got.seconds, cpu);
    }
    // Context only: the same downloads with curl, bytes counted but not hashed.
    for (const [kind, url, servers] of [
      ['troveGetCurl', troveUrl, troveProcesses],
      ['nginxGetCurl', nginxUrl, nginxProcesses],
    ] as const) {
      if (!curl || !url) continue;
      await settle();
      const { result: got, cpu } = await timed(ctx, servers, `curl ${url}`, () =>
        curlGet(curl, url),
      );
      if (got && got.status === 200 && got.bytes === bytes) record(kind, got.seconds, cpu);
      else if (got)
        ctx.failures.push(`curl ${url} → ${got.status}, ${got.bytes} bytes (expected ${bytes})`);
    }
  }

  for (const [kind, values] of Object.entries(results.mbps))
    results.median[kind as LargeKind] = median(values);
  for (const [kind, costs] of Object.entries(results.cpuMsPerMb))
    results.cpuMedian[kind as LargeKind] = medianCost(costs);

  if (ids[0]) {
    await settle();
    results.concurrentS = await concurrentRound(ctx, source, sha256, ids[0], uploads);
  }
  progress('each process at rest after the large transfers…');
  results.memory.after = await restingRss(
    ctx,
    uploads.map((u) => u.id),
  );
  results.memory.peak = ctx.sampler.peaksOf('large');
  ctx.sampler.setPhase('large, deleting');
  ctx.notes.push(
    ...(await deleteFiles(`${ctx.trove.origin}${ctx.trove.prefix}`, uploads, ctx.dispatcher)),
  );
  return results;
}

/** Where a suite PUTs a file: `max_downloads=0`, so no download counter is involved. */
export const uploadUrl = (ctx: BenchContext, name: string) =>
  `${ctx.trove.origin}${ctx.trove.prefix}/upload/${name}?max_downloads=0`;

/**
 * One upload and two downloads of the large file at once, the load that
 * shows a process's peak memory (a gateway holds all three streams): every
 * transfer is checked, none timed for MB/s. Answers its duration in seconds.
 */
async function concurrentRound(
  ctx: BenchContext,
  source: string,
  sha256: string,
  id: string,
  uploads: Uploaded[],
): Promise<number | undefined> {
  const bytes = ctx.opts.largeBytes;
  progress('one large upload and two downloads at once…');
  const putUrl = uploadUrl(ctx, 'bench-large-concurrent.jpg');
  const getUrl = `${ctx.trove.origin}${ctx.trove.prefix}/download/${id}`;
  const started = performance.now();
  const [put, ...gets] = await Promise.all([
    attempt(ctx, `PUT ${putUrl}`, () => putFile(putUrl, source, bytes, ctx.dispatcher)),
    attempt(ctx, `GET ${getUrl}`, () => getFile(getUrl, ctx.dispatcher)),
    attempt(ctx, `GET ${getUrl}`, () => getFile(getUrl, ctx.dispatcher)),
  ]);
  const seconds = (performance.now() - started) / 1000;
  const uploaded = put && checkUpload(ctx, putUrl, put, bytes, sha256);
  if (uploaded) uploads.push(uploaded);
  const ok = gets.map(
    (got: Transfer | undefined) => got && checkDownload(ctx, getUrl, got, bytes, sha256),
  );
  if (!uploaded || !ok.every(Boolean)) return undefined;
  progress(`  at once: ${seconds.toFixed(1)} s`);
  return seconds;
}

/** `attempt`, and the CPU of `servers` and the bench while it ran. */
function timed(
  ctx: BenchContext,
  servers: () => Watched[],
  what: string,
  run: () => Promise<Transfer>,
): Promise<{ result: Transfer | undefined; cpu: CpuUse }> {
  return metered(servers, () => attempt(ctx, what, run));
}

async function attempt(
  ctx: BenchContext,
  what: string,
  run: () => Promise<Transfer>,
): Promise<Transfer | undefined> {
  try {
    return await run();
  } catch (err) {
    ctx.failures.push(`${what}: ${(err as Error).message}`);
    return undefined;
  }
}

/** The Trove id and delete token of a good upload; records a failure otherwise. */
export function checkUpload(
  ctx: BenchContext,
  url: string,
  put: Transfer,
  bytes: number,
  sha256: string,
): Uploaded | undefined {
  const answer = safeJson(put.answer) as
    { id?: string; sha256?: string; size?: number; delete_token?: string } | undefined;
  if (put.status !== 201 || !answer?.id || !answer.delete_token) {
    ctx.failures.push(`PUT ${url} → ${put.status} ${put.answer.slice(0, 200)}`);
    return undefined;
  }
  if (answer.sha256 !== sha256 || answer.size !== bytes) {
    ctx.failures.push(
      `PUT ${url}: Trove stored sha256 ${answer.sha256} / ${answer.size} bytes, sent ${sha256} / ${bytes}`,
    );
    return undefined;
  }
  return { id: answer.id, token: answer.delete_token };
}

function checkDownload(
  ctx: BenchContext,
  url: string,
  got: Transfer,
  bytes: number,
  sha256: string,
): boolean {
  if (got.status === 200 && got.bytes === bytes && got.sha256 === sha256) return true;
  ctx.failures.push(
    `GET ${url} → ${got.status}, ${got.bytes} bytes, sha256 ${got.sha256} (expected ${bytes} bytes, ${sha256})`,
  );
  return false;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The round with the median CPU of the servers, whole: its processes' figures
 * add up to its total (medians taken process by process would not, when
 * downloads are served by a different node from one round to the next).
 */
export function medianCost(costs: CpuCost[]): CpuCost {
  const sorted = [...costs].sort((a, b) => a.server - b.server);
  return sorted[(sorted.length - 1) >> 1]!;
}

/**
 * What download counting costs (gateway/download/download-counter.ts). GETs of 64 KiB
 * files with a download limit, each taking a slot under a per-file Redis lock
 * and writing SQLite, beside the same GETs of files uploaded with
 * max_downloads=0, which skip the counter: same bytes, same path otherwise,
 * same concurrency, back to back in the same run.
 *
 * - latency: requests spread over unrelated files, at 1 and 16 connections;
 * - hot file: downloads/s of one file at 64 connections, where the counter
 *   settles concurrent requests in batches behind one lock holder; then the
 *   file's downloads_used must have risen by exactly the 200s received.
 */
import autocannon from 'autocannon';
import { request } from 'undici';
import { progress, safeJson, settle, type BenchContext } from './context.js';
import { getFile } from './large.js';
import { jpegBody, sha256 } from './payload.js';
import { GATEWAY_DEFAULTS } from './service-defaults.js';
import { SMALL_BYTES, uploadOne } from './small-suite.js';
import { counts, discardResponseBodies, smallFailures, type LoadCounts } from './small.js';

/** Files per side of the latency runs, so consecutive requests hit unrelated counters. */
const LATENCY_FILES = 20;
const LATENCY_CONNECTIONS = [1, 16];
const HOT_CONNECTIONS = 64;
/**
 * The gateway's default MAX_DOWNLOADS_LIMIT (it refuses more): far beyond what
 * a run serves, so every GET goes through the counter and none runs out.
 */
export const COUNTED_MAX_DOWNLOADS = GATEWAY_DEFAULTS.limits.maxDownloadsLimit;
const UPLOAD_CONCURRENCY = 8;
/** Seconds an answer may take before autocannon counts a timeout (an error). */
const TIMEOUT_S = 30;

export type CounterSide = 'unlimited' | 'counted';

export interface CounterRun extends LoadCounts {
  side: CounterSide;
  connections: number;
  /** Distinct files the requests went round. */
  files: number;
  /** From the start of the run to the last answer. */
  seconds: number;
  /** 2xx responses per second. */
  rps: number;
  /** Of 2xx responses, from each one's own timer (autocannon's histogram keeps whole ms, too coarse to subtract). */
  latencyMs: { mean: number; p50: number; p99: number };
  /** Mean bytes received per response, headers included. */
  bytesPerResponse: number;
  warmup: LoadCounts & { seconds: number };
}

export interface CounterPair {
  connections: number;
  unlimited: CounterRun;
  counted: CounterRun;
}

/** The hot counted file's downloads_used around its measured run, and the 200s the client got in it. */
export interface HotCount {
  id: string;
  usedBefore: number;
  usedAfter: number;
  ok200: number;
}

export interface CounterResults {
  maxDownloads: number;
  latency: CounterPair[];
  hot: (CounterPair & { count: HotCount | undefined }) | undefined;
}

export async function runCounterSuite(ctx: BenchContext): Promise<CounterResults> {
  const results: CounterResults = {
    maxDownloads: COUNTED_MAX_DOWNLOADS,
    latency: [],
    hot: undefined,
  };
  // Also needed when this suite runs alone (--only counter): see small.ts.
  if (!discardResponseBodies()) {
    const note =
      'autocannon internals changed: response bodies are kept, counter figures are client-bound';
    if (!ctx.notes.includes(note)) ctx.notes.push(note);
  }
  const files = await prepareFiles(ctx);
  if (!files) return results;

  for (const connections of LATENCY_CONNECTIONS) {
    const ids = { unlimited: files.unlimited, counted: files.counted };
    const { runs } = await pair(ctx, { connections, ids, what: `over ${LATENCY_FILES} files` });
    results.latency.push({ connections, ...runs });
  }
  const hot = await pair(ctx, {
    connections: HOT_CONNECTIONS,
    ids: { unlimited: [files.hotUnlimited], counted: [files.hotCounted] },
    what: 'of one file',
    hot: true,
  });
  results.hot = { connections: HOT_CONNECTIONS, ...hot.runs, count: hot.count };
  return results;
}

interface CounterFiles {
  unlimited: string[];
  counted: string[];
  hotUnlimited: string;
  hotCounted: string;
}

/**
 * Uploads LATENCY_FILES + 1 files per side (the extra one is the hot file),
 * then downloads one counted file to check its bytes and that the counter
 * counted it: otherwise the "counted" figures would measure nothing.
 */
async function prepareFiles(ctx: BenchContext): Promise<CounterFiles | undefined> {
  const n = LATENCY_FILES + 1;
  progress(`uploading ${2 * n} files of 64 KiB for the counter runs…`);
  try {
    const unlimited = await uploadSet(ctx, 'unlimited', n, 0);
    const counted = await uploadSet(ctx, 'counted', n, COUNTED_MAX_DOWNLOADS);
    const probe = counted[1]!;
    const url = `${ctx.trove.origin}${ctx.trove.prefix}/download/${probe.id}`;
    const got = await getFile(url, ctx.dispatcher);
    if (got.status !== 200 || got.sha256 !== probe.sha256) {
      throw new Error(
        `GET ${url}: status ${got.status}, sha256 ${got.sha256} (expected ${probe.sha256})`,
      );
    }
    const used = await downloadsUsed(ctx, probe.id);
    if (used !== 1) throw new Error(`one download of ${probe.id} left downloads_used at ${used}`);
    return {
      unlimited: unlimited.slice(1).map((f) => f.id),
      counted: counted.slice(1).map((f) => f.id),
      hotUnlimited: unlimited[0]!.id,
      hotCounted: counted[0]!.id,
    };
  } catch (err) {
    ctx.failures.push(`preparing the counter files: ${(err as Error).message}`);
    return undefined;
  }
}

async function uploadSet(
  ctx: BenchContext,
  side: CounterSide,
  n: number,
  maxDownloads: number,
): Promise<{ id: string; sha256: string }[]> {
  const files = new Array<{ id: string; sha256: string }>(n);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const body = jpegBody(SMALL_BYTES);
      const hash = sha256(body);
      const name = `bench-counter-${side}-${i}.jpg`;
      files[i] = { id: await uploadOne(ctx, name, body, hash, maxDownloads), sha256: hash };
    }
  };
  await Promise.all(Array.from({ length: UPLOAD_CONCURRENCY }, worker));
  return files;
}

/** `downloads_used` from GET /files/:id. */
async function downloadsUsed(ctx: BenchContext, id: string): Promise<number> {
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/files/${id}`;
  const res = await request(url, { dispatcher: ctx.dispatcher });
  const text = await res.body.text();
  const file = safeJson(text) as { downloads_used?: unknown } | undefined;
  if (res.statusCode !== 200 || typeof file?.downloads_used !== 'number') {
    throw new Error(`GET ${url} → ${res.statusCode} ${text.slice(0, 200)}`);
  }
  return file.downloads_used;
}

interface PairSpec {
  connections: number;
  /** Files each side goes round. */
  ids: Record<CounterSide, string[]>;
  /** For progress lines: "over 20 files", "of one file". */
  what: string;
  /** The hot file: fixed numbers of requests, and its count checked. */
  hot?: boolean;
}

/**
 * Both sides warmed up, then the unlimited reference in two halves around the
 * counted run (A B A), so drift on a noisy machine weighs on both sides alike
 * rather than on whichever ran second.
 *
 * Hot runs send a fixed number of requests (--duration seconds' worth at the
 * warm-up's rate) rather than running for a time: a timed run is cut off with
 * requests in flight, which Trove may serve and count though the client never
 * sees them, so only a run that ends with every request answered can be
 * checked against the count.
 */
async function pair(
  ctx: BenchContext,
  spec: PairSpec,
): Promise<{ runs: Record<CounterSide, CounterRun>; count?: HotCount }> {
  const { connections } = spec;
  const { warmupS, durationS } = ctx.opts;
  const label = (side: CounterSide) =>
    `${side} GET 64 KiB ${spec.what}, ${connections} connection${connections === 1 ? '' : 's'}`;
  const nextPath = {
    unlimited: rotate(ctx, spec.ids.unlimited),
    counted: rotate(ctx, spec.ids.counted),
  };
  progress(`${label('counted')} vs unlimited: ${warmupS} s warm-up each, ${durationS} s each…`);
  const warm = {} as Record<CounterSide, LoadResult>;
  for (const side of ['unlimited', 'counted'] as const) {
    await settle();
    warm[side] = await load(ctx, { connections, nextPath: nextPath[side], seconds: warmupS });
  }
  const segment = async (side: CounterSide, seconds: number) => {
    const rate = warm[side].counts.ok / Math.max(warm[side].seconds, 0.1);
    const amount = Math.max(connections * 4, Math.round(rate * seconds));
    return load(ctx, {
      connections,
      nextPath: nextPath[side],
      ...(spec.hot ? { amount } : { seconds }),
    });
  };

  await settle();
  const first = await segment('unlimited', durationS / 2);
  // The settle also lets the warm-up's cut-off requests finish (or be given back) before a count is read.
  await settle();
  const hotId = spec.hot ? spec.ids.counted[0] : undefined;
  const counted = hotId
    ? await counting(ctx, hotId, () => segment('counted', durationS))
    : { run: await segment('counted', durationS), count: undefined };
  await settle();
  const second = await segment('unlimited', durationS / 2);
  const files = (side: CounterSide) => spec.ids[side].length;
  const runs = {
    unlimited: checked(
      ctx,
      label('unlimited'),
      summarize('unlimited', connections, files('unlimited'), warm.unlimited, merge(first, second)),
    ),
    counted: checked(
      ctx,
      label('counted'),
      summarize('counted', connections, files('counted'), warm.counted, counted.run),
    ),
  };
  if (counted.count) checkCount(ctx, counted.count, runs.counted);
  return { runs, count: counted.count };
}

/** A path function going round `ids`. */
function rotate(ctx: BenchContext, ids: string[]): () => string {
  let i = 0;
  return () => `${ctx.trove.prefix}/download/${ids[i++ % ids.length]}`;
}

/** Runs `measure` between two reads of the file's downloads_used. */
async function counting(
  ctx: BenchContext,
  id: string,
  measure: () => Promise<LoadResult>,
): Promise<{ run: LoadResult; count: HotCount | undefined }> {
  const usedBefore = await readCount(ctx, id);
  const run = await measure();
  const usedAfter = usedBefore === undefined ? undefined : await readCount(ctx, id);
  if (usedBefore === undefined || usedAfter === undefined) return { run, count: undefined };
  return { run, count: { id, usedBefore, usedAfter, ok200: run.counts.statusCodes['200'] ?? 0 } };
}

/** Exactness: every 200 took exactly one download, and nothing else took one. */
function checkCount(ctx: BenchContext, count: HotCount, run: CounterRun): void {
  const rose = count.usedAfter - count.usedBefore;
  progress(`hot file ${count.id}: downloads_used +${rose}, ${count.ok200} × 200 received`);
  if (rose !== count.ok200) {
    ctx.failures.push(
      `hot file ${count.id}: downloads_used rose by ${rose} during the measured run, but the client received ${count.ok200} × 200 (${run.non2xx} non-2xx, ${run.errors} errors)`,
    );
  }
}

async function readCount(ctx: BenchContext, id: string): Promise<number | undefined> {
  try {
    return await downloadsUsed(ctx, id);
  } catch (err) {
    ctx.failures.push(`reading the hot file's count: ${(err as Error).message}`);
    return undefined;
  }
}

interface LoadSpec {
  connections: number;
  nextPath: () => string;
  /** Run for this long… */
  seconds?: number;
  /** …or until this many requests are answered (spread evenly over the connections). */
  amount?: number;
}

interface LoadResult {
  counts: LoadCounts;
  seconds: number;
  /** ms, of each 2xx response. */
  latencies: number[];
  responses: number;
  bytes: number;
}

async function load(ctx: BenchContext, spec: LoadSpec): Promise<LoadResult> {
  const seen = { latencies: [] as number[], responses: 0, bytes: 0, last: 0 };
  const started = performance.now();
  const instance = autocannon({
    url: ctx.trove.origin,
    connections: spec.connections,
    // autocannon fills in defaults with Object.assign, so an undefined key would erase one.
    ...(spec.amount ? { amount: spec.amount } : { duration: spec.seconds }),
    timeout: TIMEOUT_S,
    // Sample every 100 ms, not every second, so the end of a run is noticed promptly.
    sampleInt: 100,
    requests: [
      {
        method: 'GET',
        setupRequest: (req) => {
          req.path = spec.nextPath();
          return req;
        },
      },
    ],
  });
  instance.on('response', (_client: unknown, status: number, bytes: number, latency: number) => {
    seen.last = performance.now();
    seen.responses++;
    seen.bytes += bytes;
    if (status >= 200 && status < 300) seen.latencies.push(latency);
  });
  const r = await instance;
  return {
    counts: counts(r),
    // autocannon notices the end only at its next sample; the last answer is the real end.
    seconds: seen.last > started ? (seen.last - started) / 1000 : r.duration,
    latencies: seen.latencies,
    responses: seen.responses,
    bytes: seen.bytes,
  };
}

function summarize(
  side: CounterSide,
  connections: number,
  files: number,
  warm: LoadResult,
  run: LoadResult,
): CounterRun {
  const lat = run.latencies.sort((a, b) => a - b);
  const mean = lat.length > 0 ? lat.reduce((a, b) => a + b, 0) / lat.length : 0;
  return {
    side,
    connections,
    files,
    seconds: run.seconds,
    rps: run.seconds > 0 ? run.counts.ok / run.seconds : 0,
    ...run.counts,
    latencyMs: { mean, p50: percentile(lat, 50), p99: percentile(lat, 99) },
    bytesPerResponse: run.responses > 0 ? run.bytes / run.responses : 0,
    warmup: { ...warm.counts, seconds: warm.seconds },
  };
}

/** One result from two segments of the same side. */
function merge(a: LoadResult, b: LoadResult): LoadResult {
  const statusCodes = { ...a.counts.statusCodes };
  for (const [code, n] of Object.entries(b.counts.statusCodes)) {
    statusCodes[code] = (statusCodes[code] ?? 0) + n;
  }
  return {
    counts: {
      ok: a.counts.ok + b.counts.ok,
      non2xx: a.counts.non2xx + b.counts.non2xx,
      errors: a.counts.errors + b.counts.errors,
      timeouts: a.counts.timeouts + b.counts.timeouts,
      statusCodes,
    },
    seconds: a.seconds + b.seconds,
    latencies: [...a.latencies, ...b.latencies],
    responses: a.responses + b.responses,
    bytes: a.bytes + b.bytes,
  };
}

/** Nearest-rank percentile of sorted values; 0 when there are none. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Records the run's failed requests and short bodies, as the 64 KiB suite does. */
function checked(ctx: BenchContext, label: string, run: CounterRun): CounterRun {
  const lat = run.latencyMs;
  progress(
    `${label}: ${run.rps.toFixed(0)} req/s, p50 ${lat.p50.toFixed(2)} ms, p99 ${lat.p99.toFixed(2)} ms`,
  );
  ctx.failures.push(...smallFailures(run, label));
  if (run.ok > 0 && run.bytesPerResponse < SMALL_BYTES) {
    ctx.failures.push(
      `${label}: responses averaged ${run.bytesPerResponse.toFixed(0)} bytes, less than the 64 KiB body`,
    );
  }
  if (run.ok === 0) ctx.failures.push(`${label}: not one request succeeded`);
  return run;
}

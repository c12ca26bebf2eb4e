/**
 * POST /process throughput (`--only process`): thumbnails (op=thumbnail:
 * 256 px longest edge, WebP) of one ~3 MP JPEG sent as the raw body, at 4 and
 * 16 concurrent clients, beside the reference: the same pipeline
 * (shared/image-ops.ts, the same sharp calls on the same bytes) run in this
 * process at the same concurrency, without HTTP. The ratio is what the HTTP
 * hop, the gateway's streaming checks and its slots cost on top of the image
 * work itself.
 *
 * The client is a closed loop of its own (undici) rather than autocannon,
 * because a 503 here is the gateway working as designed: with every
 * PROCESS_CONCURRENCY slot busy it refuses at once. A connection that gets
 * one waits its Retry-After, as a well-behaved client would, instead of
 * spinning and re-sending megabytes the gateway will refuse again. 503s are
 * counted and shown; any other non-200, or a wrong image, fails the run.
 */
import sharp from 'sharp';
import { request } from 'undici';
import {
  FORMAT_TYPES,
  THUMBNAIL_SIZE,
  openImage,
  processImage,
  resolveImageOptions,
  type ImageLimits,
} from '../../shared/image-ops.js';
import { progress, settle, type BenchContext } from './context.js';
import { CpuMeter, named } from './procfs.js';
import { GATEWAY_DEFAULTS } from './service-defaults.js';
import { fmt, type Row } from './table.js';

const CONNECTIONS = [4, 16];
const QUERY = 'op=thumbnail';
const WIDTH = 2048;
const HEIGHT = 1536;
/** The gateway's default MAX_INPUT_PIXELS, for the in-process reference. */
const LIMITS: ImageLimits = { maxInputPixels: GATEWAY_DEFAULTS.processing.maxInputPixels };
const TIMEOUT_MS = 60_000;

export type ProcessSide = 'trove' | 'in-process';

export interface ProcessRun {
  side: ProcessSide;
  connections: number;
  /** From the start of the run to the last answer. */
  seconds: number;
  /** Images made (200s) per second. */
  rps: number;
  ok: number;
  /** Refused with 503 because every processing slot was busy. */
  busy: number;
  /** Any other answer, by status, and transport errors: each is a failure. */
  statusCodes: Record<string, number>;
  errors: number;
  latencyMs: { p50: number; p99: number };
  /** CPU per image made: the gateway and nodes (Trove), or this process (in-process). */
  cpuMsPerImage: number;
  warmup: { ok: number; busy: number; seconds: number };
}

export interface ProcessResults {
  input: { width: number; height: number; bytes: number };
  query: string;
  runs: { connections: number; trove: ProcessRun; reference: ProcessRun }[];
  /** The gateway's RSS, bytes, when the suite began and at its peak (sharp holds each image whole). */
  gatewayRss: { start: number | undefined; peak: number | undefined };
}

export async function runProcessSuite(ctx: BenchContext): Promise<ProcessResults> {
  const jpeg = await sourceImage();
  const results: ProcessResults = {
    input: { width: WIDTH, height: HEIGHT, bytes: jpeg.length },
    query: QUERY,
    runs: [],
    gatewayRss: { start: undefined, peak: undefined },
  };
  progress(
    `POST /process?${QUERY} of a ${WIDTH}×${HEIGHT} JPEG (${(jpeg.length / 1e6).toFixed(2)} MB)…`,
  );
  const expected = await checkOnce(ctx, jpeg);
  if (!expected) return results;
  const { warmupS, durationS } = ctx.opts;
  for (const connections of CONNECTIONS) {
    const sides = {
      reference: () => inProcess(jpeg),
      trove: () => overHttp(ctx, jpeg, expected),
    };
    const run = {} as Record<'reference' | 'trove', ProcessRun>;
    for (const side of ['reference', 'trove'] as const) {
      await settle();
      const warm = await load(sides[side](), connections, warmupS);
      const pids = side === 'trove' ? ctx.trove.pids : undefined;
      const measured = await load(sides[side](), connections, durationS, pids);
      run[side] = summarize(side === 'trove' ? 'trove' : 'in-process', connections, warm, measured);
      report(ctx, run[side]);
    }
    results.runs.push({ connections, trove: run.trove, reference: run.reference });
  }
  // bench.ts names this suite's phase 'process'.
  results.gatewayRss = {
    start: ctx.sampler.startOf('process').gateway,
    peak: ctx.sampler.peaksOf('process').gateway,
  };
  return results;
}

/** A photo-like ~3 MP JPEG (smoothed noise: detail everywhere, as a real picture has), made once per run. */
async function sourceImage(): Promise<Buffer> {
  const noise = await sharp({
    create: {
      width: WIDTH,
      height: HEIGHT,
      channels: 3,
      background: '#808080', // required by the types; the noise replaces it
      noise: { type: 'gaussian', mean: 128, sigma: 60 },
    },
  })
    .png()
    .toBuffer();
  return sharp(noise).blur(1.2).jpeg({ quality: 88 }).toBuffer();
}

interface Expected {
  width: number;
  height: number;
}

/** One request, its image decoded and checked, before anything is timed; undefined (and a failure) if wrong. */
async function checkOnce(ctx: BenchContext, jpeg: Buffer): Promise<Expected | undefined> {
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/process?${QUERY}`;
  try {
    const res = await request(url, { method: 'POST', body: jpeg, dispatcher: ctx.dispatcher });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) {
      throw new Error(`POST ${url} → ${res.statusCode} ${body.toString().slice(0, 200)}`);
    }
    const meta = await sharp(body).metadata();
    const want = { width: THUMBNAIL_SIZE, height: Math.round((THUMBNAIL_SIZE * HEIGHT) / WIDTH) };
    if (meta.format !== 'webp' || meta.width !== want.width || meta.height !== want.height) {
      throw new Error(`POST ${url} answered a ${meta.format} of ${meta.width}×${meta.height}`);
    }
    return want;
  } catch (err) {
    ctx.failures.push(`checking /process before the runs: ${(err as Error).message}`);
    return undefined;
  }
}

/** The outcome of one request: a status, or an error, and how long a 503 asks to wait. */
interface Outcome {
  status: number | 'error';
  retryAfterS?: number;
}

type Attempt = () => Promise<Outcome>;

function overHttp(ctx: BenchContext, jpeg: Buffer, expected: Expected): Attempt {
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/process?${QUERY}`;
  return async () => {
    try {
      const res = await request(url, {
        method: 'POST',
        body: jpeg,
        dispatcher: ctx.dispatcher,
        headersTimeout: TIMEOUT_MS,
        bodyTimeout: TIMEOUT_MS,
      });
      const body = await res.body.arrayBuffer();
      if (res.statusCode === 503) {
        return { status: 503, retryAfterS: Number(res.headers['retry-after'] ?? 1) };
      }
      const right =
        res.headers['content-type'] === FORMAT_TYPES.webp &&
        res.headers['x-image-width'] === String(expected.width) &&
        body.byteLength > 0;
      if (res.statusCode === 200 && !right) return { status: 'error' };
      return { status: res.statusCode };
    } catch {
      return { status: 'error' };
    }
  };
}

function inProcess(jpeg: Buffer): Attempt {
  const options = resolveImageOptions({ op: 'thumbnail' });
  return async () => {
    const image = openImage(LIMITS);
    image.end(jpeg);
    await processImage(image, options, 'image/jpeg', LIMITS, 'bench.jpg');
    return { status: 200 };
  };
}

interface LoadResult {
  seconds: number;
  latencies: number[];
  busy: number;
  statusCodes: Record<string, number>;
  errors: number;
  cpuS: number;
}

/** `connections` closed loops of `attempt` for `seconds`; a 503 sleeps its Retry-After (within the run). */
async function load(
  attempt: Attempt,
  connections: number,
  seconds: number,
  serverPids?: () => number[],
): Promise<LoadResult> {
  const result: LoadResult = {
    seconds: 0,
    latencies: [],
    busy: 0,
    statusCodes: {},
    errors: 0,
    cpuS: 0,
  };
  const meter = new CpuMeter(named('trove', serverPids ?? (() => [])));
  meter.start();
  const started = performance.now();
  const end = started + seconds * 1000;
  let last = started;
  const loop = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const outcome = await attempt();
      last = performance.now();
      if (outcome.status === 200) result.latencies.push(last - t);
      else if (outcome.status === 503) result.busy++;
      else if (outcome.status === 'error') result.errors++;
      if (outcome.status !== 200 && outcome.status !== 'error')
        result.statusCodes[outcome.status] = (result.statusCodes[outcome.status] ?? 0) + 1;
      if (outcome.status === 503) {
        const wait = Math.min((outcome.retryAfterS ?? 1) * 1000, end - performance.now());
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  const cpu = meter.stop();
  result.cpuS = serverPids ? cpu.serverS : cpu.clientS;
  result.seconds = (last - started) / 1000;
  return result;
}

function summarize(
  side: ProcessSide,
  connections: number,
  warm: LoadResult,
  run: LoadResult,
): ProcessRun {
  const lat = [...run.latencies].sort((a, b) => a - b);
  const ok = lat.length;
  return {
    side,
    connections,
    seconds: run.seconds,
    rps: run.seconds > 0 ? ok / run.seconds : 0,
    ok,
    busy: run.busy,
    // Warm-up included: a wrong answer then is as much a failure.
    statusCodes: unexpected([warm, run]),
    errors: warm.errors + run.errors,
    latencyMs: { p50: percentile(lat, 50), p99: percentile(lat, 99) },
    cpuMsPerImage: ok > 0 ? (run.cpuS * 1000) / ok : 0,
    warmup: { ok: warm.latencies.length, busy: warm.busy, seconds: warm.seconds },
  };
}

/** Statuses other than 200 and 503, summed over `results`. */
function unexpected(results: LoadResult[]): Record<string, number> {
  const codes: Record<string, number> = {};
  for (const r of results)
    for (const [code, n] of Object.entries(r.statusCodes))
      if (code !== '503') codes[code] = (codes[code] ?? 0) + n;
  return codes;
}

/** Nearest-rank percentile of sorted values; 0 when there are none. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function report(ctx: BenchContext, r: ProcessRun): void {
  const label = `${r.side === 'trove' ? 'POST /process' : 'sharp in-process'}, ${r.connections} at a time`;
  progress(
    `${label}: ${r.rps.toFixed(1)} images/s, p50 ${r.latencyMs.p50.toFixed(0)} ms, p99 ${r.latencyMs.p99.toFixed(0)} ms` +
      (r.side === 'trove' ? `, ${r.busy} × 503` : ''),
  );
  const other = Object.entries(r.statusCodes).map(([code, n]) => `${n}×${code}`);
  if (r.errors > 0 || other.length > 0) {
    ctx.failures.push(
      `${label}: ${r.errors} errors or wrong images${other.length ? `, ${other.join(', ')}` : ''}`,
    );
  }
}

/** Report rows: Trove's images/s beside the in-process reference's (ratio = Trove / in-process). */
export function processRows(r: ProcessResults): Row[] {
  const mp = ((r.input.width * r.input.height) / 1e6).toFixed(1);
  const rows = r.runs.map(({ connections, trove: t, reference: ref }): Row => {
    const total = t.ok + t.busy;
    const busy = total > 0 ? `; ${((100 * t.busy) / total).toFixed(0)} % 503` : '';
    return {
      figure: `/process ${r.query}, ${mp} MP JPEG, ${connections} connections`,
      trove:
        `${fmt(t.rps)} images/s (p50 ${fmt(t.latencyMs.p50)}, p99 ${fmt(t.latencyMs.p99)} ms` +
        `${busy}; ${fmt(t.cpuMsPerImage)} ms CPU each)`,
      reference:
        `sharp in-process ${fmt(ref.rps)} images/s (p50 ${fmt(ref.latencyMs.p50)}, ` +
        `p99 ${fmt(ref.latencyMs.p99)} ms; ${fmt(ref.cpuMsPerImage)} ms CPU each)`,
      ratio: ref.rps > 0 ? t.rps / ref.rps : undefined,
      target: '—',
      verdict: '—',
      swift: '—',
    };
  });
  const { start, peak } = r.gatewayRss;
  const mb = (v: number) => `${(v / 1e6).toFixed(0)} MB`;
  rows.push({
    figure: 'peak RSS gateway, /process runs',
    trove: peak === undefined ? 'no sample' : `${mb(peak)}${start ? ` (${mb(start)} before)` : ''}`,
    reference: '—',
    ratio: undefined,
    target: '—',
    verdict: '—',
    swift: '—',
  });
  return rows;
}

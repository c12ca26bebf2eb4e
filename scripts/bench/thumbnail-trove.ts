/**
 * Thumbnails/s of the worker path (`--only thumbnails`): 20 photo-like JPEGs
 * of 2-4 MP (photos.ts) uploaded through the gateway while the worker is
 * paused (SIGSTOP), then timed from the moment it resumes (SIGCONT) with the
 * 20 jobs queued until GET /files/:id of every one lists its thumbnail, and
 * on until every one is `done` (the compressed copy too), beside
 * vipsthumbnail (libvips's own tool, Debian's libvips-tools) making the same
 * 256 px WebP thumbnails of the same files in the same run, with the worker's
 * parallelism: IMAGE_CONCURRENCY images at once, each with as many libvips
 * threads as there are cores.
 *
 * Both sides start from the 20 originals at rest (vipsthumbnail's on local
 * disk, the worker's as queued jobs and three replicas on the storage nodes),
 * so the uploads are not in either figure; the worker's figure has its fetch
 * of each original from a node, the three fsynced copies of each thumbnail
 * and the metadata commit. The worker makes thumbnails first and compressed
 * copies after them (worker/image-processor.ts), so two more rows say what
 * the rest costs: vipsthumbnail doing both variants against the worker's
 * "both variants done", and the worker's own sharp call for the thumbnail
 * run in this process (the thumbnail alone, without the queue, the transfers
 * and the copies). Without the worker's pid file the batch cannot pause it:
 * the clock then runs from the first upload's 201, uploads included, and a
 * note says so.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { request } from 'undici';
import { loadWorkerConfig } from '../../shared/config.js';
import { pidFilePath } from '../../shared/pid-file.js';
import {
  configureSharp,
  readHeader,
  renderVariant,
  VARIANT_SPECS,
} from '../../worker/image-variants.js';
import { SERVICES } from './cluster.js';
import { findExecutable, progress, safeJson, settle, type BenchContext } from './context.js';
import { sha256 } from './payload.js';
import { makePhotos, PHOTO_SIZES, type Photo } from './photos.js';
import { cpuSeconds, exitedChildrenCpuSeconds, isAlive, type Watched } from './procfs.js';
import { fmt, type Row } from './table.js';

const THUMB = VARIANT_SPECS.find((s) => s.name === 'thumb')!;
const COPY = VARIANT_SPECS.find((s) => s.name === 'compressed')!;
/** worker/image-variants.ts encodes both variants as WebP at this quality (not exported there). */
const WEBP_QUALITY = 80;
/** The worker's default IMAGE_CONCURRENCY, when its settings cannot be read here. */
const DEFAULT_IMAGE_CONCURRENCY = 2;
/** The worker's default MAX_INPUT_PIXELS, for its header check in-process (the photos are far below it). */
const MAX_INPUT_PIXELS = 50_000_000;
/** Uploads in flight: enough that the last 201 comes well before the worker is through. */
const UPLOAD_CONCURRENCY = 4;
/** Between two GET /files/:id of the file awaited; the end of the batch is known to within this. */
const POLL_MS = 50;
/** Files asked about at once when catching up after the awaited one is done. */
const CATCH_UP = 4;
/** No file done for this long: the worker is not processing (not running, or another cluster's). */
const STALL_MS = 90_000;
/**
 * For the warm-up photo, which also waits out any backlog: in a full run the
 * earlier suites' uploads (random bytes behind a JPEG marker) are image jobs
 * too, each failing fast, and the queue is first in, first out.
 */
const WARMUP_STALL_MS = 300_000;
/** A warm-up slower than this means the worker had a backlog (or is starved); the note says so. */
const WARMUP_NOTE_S = 5;
/** Rounds of the cheap thumbnail-only references, interleaved around the Trove run; the median is shown. */
const THUMB_ROUNDS = 3;
const TIMEOUT_MS = 60_000;
const TARGET = 0.8;

/** A batch of the 20 photos: wall time from the start (Trove: the first 201) to the last image. */
export interface BatchRate {
  seconds: number;
  imagesPerS: number;
  /** CPU per image, ms: the child processes (vipsthumbnail), this process (sharp), or the cluster (Trove). */
  cpuMsPerImage: number;
}

export interface TroveThumbRun extends BatchRate {
  /** Whether the worker was paused during the uploads (else the clock ran from the first 201, uploads included). */
  paused: boolean;
  /** Seconds of the 20 uploads (first start to last 201). */
  uploadS: number;
  /** Every image with both variants: `done`, from the same start. */
  both: BatchRate;
  /** The worker's own CPU per image, ms (undefined without its pid file); cpuMsPerImage adds the gateway and nodes. */
  workerCpuMsPerImage: number | undefined;
  /** CPU per image, ms, of each process with a live pid file (gateway, node1-3, worker). */
  cpuMsPerImageByProcess: Record<string, number>;
  /** GET /files/:id requests made while waiting. */
  polls: number;
  /** The untimed warm-up photo, alone on an idle worker: seconds from its 201 to `done` (latency, not throughput). */
  warmupS: number;
}

export interface ThumbnailResults {
  photos: {
    count: number;
    megapixels: { min: number; max: number; total: number };
    bytes: number;
    generateS: number;
  };
  /** Images at once (IMAGE_CONCURRENCY) and libvips threads per image (cores): the same on every side. */
  concurrency: number;
  threads: number;
  vipsthumbnail: { binary: string; version: string } | { skipped: string };
  trove: TroveThumbRun | undefined;
  /** vipsthumbnail, 256 px WebP: each round. */
  vipsThumb: BatchRate[];
  /** The worker's sharp call for the thumbnail (renderVariant) in this process: each round. */
  sharpThumb: BatchRate[];
  /** vipsthumbnail making the thumbnail and the ≤ 2048 px copy of each photo. */
  vipsBoth: BatchRate | undefined;
}

export async function runThumbnailSuite(
  ctx: BenchContext,
  storageDir: string,
): Promise<ThumbnailResults> {
  const concurrency = imageConcurrency(ctx);
  const threads = availableParallelism();
  const dir = join(ctx.scratch, 'thumbnails');
  await mkdir(dir, { recursive: true });

  progress(`thumbnails: making ${PHOTO_SIZES.length} photo-like JPEGs of 2-4 MP…`);
  const started = performance.now();
  const photos = await makePhotos();
  const generateS = (performance.now() - started) / 1000;
  const paths = photos.map((p) => join(dir, p.name));
  await Promise.all(photos.map((p, i) => writeFile(paths[i]!, p.jpeg)));
  const mp = photos.map((p) => (p.width * p.height) / 1e6);
  const bytes = photos.reduce((sum, p) => sum + p.jpeg.length, 0);
  progress(
    `thumbnails: ${photos.length} photos, ${Math.min(...mp).toFixed(1)}-${Math.max(...mp).toFixed(1)} MP, ` +
      `${(bytes / 1e6).toFixed(1)} MB, made in ${generateS.toFixed(1)} s`,
  );

  const results: ThumbnailResults = {
    photos: {
      count: photos.length,
      megapixels: {
        min: Math.min(...mp),
        max: Math.max(...mp),
        total: mp.reduce((a, b) => a + b, 0),
      },
      bytes,
      generateS,
    },
    concurrency,
    threads,
    vipsthumbnail: vipsthumbnailBinary(),
    trove: undefined,
    vipsThumb: [],
    sharpThumb: [],
    vipsBoth: undefined,
  };
  const vips = 'binary' in results.vipsthumbnail ? results.vipsthumbnail.binary : undefined;
  if (!vips)
    ctx.notes.push(`thumbnails: vipsthumbnail comparisons skipped: ${skipReason(results)}`);
  const lanes = balance(photos, paths, concurrency);

  // The same global settings as the worker's (threads per image, no operation cache).
  configureSharp(threads);
  await sharpThumbs(paths.slice(0, 1), 1); // loads libvips's JPEG and WebP code before anything is timed

  // A side that fails is a failure of the run; the other sides still run.
  const attempt = async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      ctx.failures.push(`thumbnails: ${(err as Error).message}`);
      return undefined;
    }
  };
  const thumbRound = async (round: number) => {
    if (vips) {
      await settle();
      const out = join(dir, `vips-thumb-${round}`);
      const run = await attempt(() =>
        vipsBatch(vips, lanes, threads, (files) => [thumbArgs(files, out)], out),
      );
      if (run) {
        results.vipsThumb.push(run);
        report('vipsthumbnail 256 px', run, concurrency);
        if (round === 1) await checkOutputs(ctx, out, photos, [['', THUMB.maxEdge]]);
      }
    }
    await settle();
    const run = await attempt(() => sharpThumbs(paths, concurrency));
    if (run) {
      results.sharpThumb.push(run);
      report("worker's sharp call, thumbnail only, in-process", run, concurrency);
    }
  };

  try {
    await thumbRound(1);
    await settle();
    results.trove = await attempt(() => troveBatch(ctx, photos, storageDir));
    if (vips) {
      await settle();
      const out = join(dir, 'vips-both');
      const steps = (files: string[]) => [thumbArgs(files, out), copyArgs(files, out)];
      results.vipsBoth = await attempt(() => vipsBatch(vips, lanes, threads, steps, out));
      if (results.vipsBoth) {
        report('vipsthumbnail 256 px + ≤ 2048 px copy', results.vipsBoth, concurrency);
        await checkOutputs(ctx, out, photos, [
          ['', THUMB.maxEdge],
          ['-copy', COPY.maxEdge],
        ]);
      }
    }
    for (let round = 2; round <= THUMB_ROUNDS; round++) await thumbRound(round);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

function imageConcurrency(ctx: BenchContext): number {
  try {
    return loadWorkerConfig(process.env).imageConcurrency;
  } catch (err) {
    ctx.notes.push(
      `thumbnails: worker settings unreadable here, IMAGE_CONCURRENCY ${DEFAULT_IMAGE_CONCURRENCY} assumed (${err})`,
    );
    return DEFAULT_IMAGE_CONCURRENCY;
  }
}

function vipsthumbnailBinary(): ThumbnailResults['vipsthumbnail'] {
  const binary = findExecutable('vipsthumbnail');
  if (!binary)
    return { skipped: 'vipsthumbnail is not installed (e.g. apt-get install libvips-tools)' };
  const run = spawnSync(binary, ['--vips-version'], { encoding: 'utf8', timeout: 10_000 });
  if (run.status !== 0) {
    return {
      skipped: `${binary} --vips-version failed: ${(run.stderr || run.error?.message) ?? ''}`,
    };
  }
  return { binary, version: run.stdout.trim() };
}

function skipReason(r: ThumbnailResults): string {
  return 'skipped' in r.vipsthumbnail ? r.vipsthumbnail.skipped : '';
}

/**
 * The photos dealt to `lanes` processes, largest first to the one with the
 * fewest pixels so far, so that they finish together: each lane is one
 * vipsthumbnail command over its files, started once, as the worker is.
 */
function balance(photos: Photo[], paths: string[], lanes: number): string[][] {
  const out = Array.from({ length: lanes }, () => ({ pixels: 0, files: [] as string[] }));
  const order = photos.map((p, i) => ({ pixels: p.width * p.height, path: paths[i]! }));
  order.sort((a, b) => b.pixels - a.pixels);
  for (const { pixels, path } of order) {
    const lane = out.reduce((min, l) => (l.pixels < min.pixels ? l : min));
    lane.pixels += pixels;
    lane.files.push(path);
  }
  return out.map((l) => l.files).filter((files) => files.length > 0);
}

/** The worker's thumbnail: 256 px box, WebP at its quality, metadata stripped (auto-rotation is vipsthumbnail's default). */
function thumbArgs(files: string[], out: string): string[] {
  return [
    '-s',
    `${THUMB.maxEdge}x${THUMB.maxEdge}>`,
    '-o',
    `${out}/%s.webp[Q=${WEBP_QUALITY},strip]`,
    ...files,
  ];
}

/** The worker's compressed copy: ≤ 2048 px box, never enlarged (">"), same encoder settings. */
function copyArgs(files: string[], out: string): string[] {
  return [
    '-s',
    `${COPY.maxEdge}x${COPY.maxEdge}>`,
    '-o',
    `${out}/%s-copy.webp[Q=${WEBP_QUALITY},strip]`,
    ...files,
  ];
}

/** One vipsthumbnail command per lane and step, the lanes at once; CPU from the exited children's rusage. */
async function vipsBatch(
  binary: string,
  lanes: string[][],
  threads: number,
  steps: (files: string[]) => string[][],
  out: string,
): Promise<BatchRate> {
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const env = { ...process.env, VIPS_CONCURRENCY: String(threads) };
  const images = lanes.reduce((n, files) => n + files.length, 0);
  const cpuBefore = exitedChildrenCpuSeconds();
  const started = performance.now();
  await Promise.all(
    lanes.map(async (files) => {
      for (const args of steps(files)) await runCommand(binary, args, env);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuS = exitedChildrenCpuSeconds() - cpuBefore;
  return { seconds, imagesPerS: images / seconds, cpuMsPerImage: (cpuS * 1000) / images };
}

function runCommand(binary: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${binary} ${args.slice(0, 4).join(' ')} … exited ${signal ?? code}: ${stderr.slice(0, 300)}`,
          ),
        );
    });
  });
}

/** Every output of a vipsthumbnail run must be a WebP whose longest edge is the box's, or the photo's when smaller. */
async function checkOutputs(
  ctx: BenchContext,
  out: string,
  photos: Photo[],
  kinds: [suffix: string, edge: number][],
): Promise<void> {
  for (const p of photos) {
    for (const [suffix, edge] of kinds) {
      const file = join(out, `${p.name.replace(/\.jpg$/, '')}${suffix}.webp`);
      try {
        const meta = await sharp(file).metadata();
        const want = fitInside(p, edge);
        if (meta.format !== 'webp' || !near(meta, want)) {
          throw new Error(
            `a ${meta.format} of ${meta.width}×${meta.height}, not ${want.width}×${want.height}`,
          );
        }
      } catch (err) {
        ctx.failures.push(`thumbnails: vipsthumbnail output ${file}: ${(err as Error).message}`);
        return;
      }
    }
  }
}

/** The size of `p` fitted inside an `edge` px box, never enlarged. */
function fitInside(p: { width: number; height: number }, edge: number) {
  const scale = Math.min(1, edge / Math.max(p.width, p.height));
  return { width: Math.round(p.width * scale), height: Math.round(p.height * scale) };
}

/** Equal sizes, give or take the one pixel libvips's rounding of the short edge may differ by. */
function near(a: { width?: number; height?: number }, b: { width: number; height: number }) {
  return Math.abs((a.width ?? 0) - b.width) <= 1 && Math.abs((a.height ?? 0) - b.height) <= 1;
}

/** The worker's thumbnail call (header check, then renderVariant) on `paths`, `concurrency` at a time. */
async function sharpThumbs(paths: string[], concurrency: number): Promise<BatchRate> {
  const queue = [...paths];
  const limits = { maxInputPixels: MAX_INPUT_PIXELS, timeLeftMs: TIMEOUT_MS };
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
        const header = await readHeader(path, MAX_INPUT_PIXELS);
        await renderVariant(path, THUMB, header, limits);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return {
    seconds,
    imagesPerS: paths.length / seconds,
    cpuMsPerImage: (used.user + used.system) / 1000 / paths.length,
  };
}

interface Uploaded {
  id: string;
  token: string;
  /** performance.now() when its request started. */
  sentAt: number;
  /** performance.now() of its 201. */
  at: number;
}

interface Variant {
  width: number;
  height: number;
  content_type: string;
  sha256: string;
}

interface Processing {
  state: string;
  reason?: string;
  variants?: { thumbnail?: Variant; compressed?: Variant };
}

/**
 * The worker path: a warm-up image (untimed), then the 20 photos uploaded
 * UPLOAD_CONCURRENCY at a time with the worker paused, then the worker
 * resumed and the files polled in upload order, first for their thumbnails,
 * then for `done`; then every record and thumbnail checked, and the files
 * deleted.
 */
async function troveBatch(
  ctx: BenchContext,
  photos: Photo[],
  storageDir: string,
): Promise<TroveThumbRun> {
  const processes = clusterProcesses(ctx, storageDir);
  const worker = processes.find((p) => p.name === 'worker');
  const run = `${Date.now().toString(36)}`;

  const warm = await upload(ctx, `thumbs-${run}-warmup.jpg`, photos[0]!.jpeg);
  const warmDone = await waitFor(ctx, [warm], isDone, () => true, WARMUP_STALL_MS);
  const warmupS = (warmDone.at[0]! - warm.at) / 1000;
  progress(`thumbnails: warm-up image done ${warmupS.toFixed(2)} s after its 201`);
  if (warmupS > WARMUP_NOTE_S) {
    ctx.notes.push(
      `thumbnails: the warm-up photo took ${warmupS.toFixed(1)} s to be processed: the worker had a backlog ` +
        '(earlier uploads) or was short of CPU; the timed batch started after it',
    );
  }
  await settle();

  const uploaded: Uploaded[] = [];
  let uploadError: Error | undefined;
  let cpuBefore = processes.map((p) => cpuSeconds(p.pid));
  let startAt = performance.now();
  const uploadAll = async () => {
    let next = 0;
    await Promise.all(
      Array.from({ length: UPLOAD_CONCURRENCY }, async () => {
        for (let i = next++; i < photos.length && !uploadError; i = next++) {
          try {
            uploaded[i] = await upload(ctx, `thumbs-${run}-${photos[i]!.name}`, photos[i]!.jpeg);
          } catch (err) {
            uploadError = err as Error;
          }
        }
      }),
    );
  };
  const allUploaded = () => {
    if (uploadError) throw uploadError;
    return uploaded.filter(Boolean).length === photos.length;
  };

  let thumbs: Awaited<ReturnType<typeof waitFor>>;
  if (worker) {
    await withWorkerPaused(worker.pid, uploadAll);
    allUploaded();
    // SIGCONT was just sent: the 20 jobs are queued, the clock starts.
    startAt = performance.now();
    cpuBefore = processes.map((p) => cpuSeconds(p.pid));
    thumbs = await waitFor(ctx, uploaded, hasThumbnail, allUploaded);
  } else {
    ctx.notes.push(
      'thumbnails: without the worker pid the batch could not pause it: timed from the first 201, uploads included',
    );
    const uploads = uploadAll();
    try {
      thumbs = await waitFor(ctx, uploaded, hasThumbnail, allUploaded);
    } finally {
      await uploads;
    }
    startAt = Math.min(...uploaded.map((u) => u.at));
  }
  const thumbCpu = processes.map((p, i) => cpuSeconds(p.pid) - cpuBefore[i]!);
  const done = await waitFor(ctx, uploaded, isDone, allUploaded);
  const bothCpu = processes.map((p, i) => cpuSeconds(p.pid) - cpuBefore[i]!);

  const perImage = (cpu: number[]) =>
    Object.fromEntries(processes.map((p, i) => [p.name, (cpu[i]! * 1000) / photos.length]));
  const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  const thumbPerImage = perImage(thumbCpu);
  const thumbS = (Math.max(...thumbs.at) - startAt) / 1000;
  const bothS = (Math.max(...done.at) - startAt) / 1000;
  const result: TroveThumbRun = {
    paused: worker !== undefined,
    seconds: thumbS,
    imagesPerS: photos.length / thumbS,
    cpuMsPerImage: sum(thumbPerImage),
    workerCpuMsPerImage: thumbPerImage.worker,
    cpuMsPerImageByProcess: thumbPerImage,
    both: {
      seconds: bothS,
      imagesPerS: photos.length / bothS,
      cpuMsPerImage: sum(perImage(bothCpu)),
    },
    uploadS:
      (Math.max(...uploaded.map((u) => u.at)) - Math.min(...uploaded.map((u) => u.sentAt))) / 1000,
    polls: thumbs.polls + done.polls,
    warmupS,
  };
  report('worker path (queued → thumbnails recorded)', result, undefined);
  report('worker path (queued → both variants done)', result.both, undefined);

  await checkTrove(ctx, photos, uploaded, done.records);
  await removeAll(ctx, [warm, ...uploaded]);
  return result;
}

/**
 * Runs `fn` with the worker stopped (SIGSTOP), and always resumes it
 * (SIGCONT), on an exit of the bench too: RabbitMQ keeps the jobs queued
 * meanwhile, and a few seconds are far inside its heartbeat timeout.
 */
async function withWorkerPaused(pid: number, fn: () => Promise<void>): Promise<void> {
  const resume = () => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone: nothing to resume
    }
  };
  process.once('exit', resume);
  process.kill(pid, 'SIGSTOP');
  try {
    await fn();
  } finally {
    resume();
    process.off('exit', resume);
  }
}

/**
 * The cluster's processes, from the pid files each writes under
 * STORAGE_DIR/run/: the gateway and nodes the bench watches anyway, and the
 * worker, whose CPU is the image work.
 */
function clusterProcesses(ctx: BenchContext, storageDir: string): Watched[] {
  const found: Watched[] = [];
  for (const name of SERVICES) {
    const file = pidFilePath(storageDir, name);
    let pid = 0;
    try {
      pid = Number(readFileSync(file, 'utf8').trim());
    } catch {
      // reported below
    }
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) found.push({ name, pid });
    else if (name === 'worker') {
      ctx.notes.push(
        `thumbnails: no live worker pid in ${file}: its CPU is not counted (is this cluster's worker running?)`,
      );
    }
  }
  return found;
}

async function upload(ctx: BenchContext, name: string, body: Buffer): Promise<Uploaded> {
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/upload/${encodeURIComponent(name)}?max_downloads=0`;
  const sentAt = performance.now();
  const res = await request(url, {
    method: 'PUT',
    body,
    headers: { 'content-type': 'image/jpeg' },
    dispatcher: ctx.dispatcher,
    headersTimeout: TIMEOUT_MS,
    bodyTimeout: TIMEOUT_MS,
  });
  const text = await res.body.text();
  const at = performance.now();
  const answer = safeJson(text) as
    { id?: string; sha256?: string; delete_token?: string; processing?: Processing } | undefined;
  if (res.statusCode !== 201 || !answer?.id || !answer.delete_token) {
    throw new Error(`PUT ${url} → ${res.statusCode} ${text.slice(0, 200)}`);
  }
  if (answer.sha256 !== sha256(body)) throw new Error(`PUT ${url}: Trove stored another sha256`);
  if (answer.processing?.state !== 'pending') {
    throw new Error(`PUT ${url}: processing is ${JSON.stringify(answer.processing)}, not pending`);
  }
  return { id: answer.id, token: answer.delete_token, sentAt, at };
}

async function processingOf(ctx: BenchContext, id: string): Promise<Processing> {
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/files/${id}`;
  const res = await request(url, {
    dispatcher: ctx.dispatcher,
    headersTimeout: TIMEOUT_MS,
    bodyTimeout: TIMEOUT_MS,
  });
  const text = await res.body.text();
  const answer = safeJson(text) as { processing?: Processing } | undefined;
  if (res.statusCode !== 200 || !answer?.processing) {
    throw new Error(`GET ${url} → ${res.statusCode} ${text.slice(0, 200)}`);
  }
  return answer.processing;
}

const isDone = (p: Processing) => p.state === 'done';
const hasThumbnail = (p: Processing) => p.variants?.thumbnail !== undefined;

/**
 * Waits until `ready` holds for every file of `files` (its thumbnail made, or
 * `done`), with few requests: it polls the oldest file not yet ready every
 * POLL_MS (the worker takes jobs in upload order, IMAGE_CONCURRENCY at a
 * time); when that one is ready, it asks about the next open ones, CATCH_UP at
 * once, until one is not, so files ready meanwhile are seen a round trip
 * later and the last is known within POLL_MS plus a request or two.
 * `complete()` says whether `files` (filled by index as uploads answer) will
 * grow no more, and throws to give up. A file that ends `failed` fails it.
 */
async function waitFor(
  ctx: BenchContext,
  files: Uploaded[],
  ready: (p: Processing) => boolean,
  complete: () => boolean,
  stallMs = STALL_MS,
): Promise<{ at: number[]; records: Processing[]; polls: number }> {
  const at: number[] = [];
  const records: Processing[] = [];
  let polls = 0;
  let progressAt = performance.now();
  const check = async (i: number): Promise<boolean> => {
    const file = files[i]!;
    const state = await processingOf(ctx, file.id);
    polls++;
    if (ready(state)) {
      at[i] = performance.now();
      records[i] = state;
      progressAt = at[i]!;
      return true;
    }
    if (state.state !== 'pending') {
      const reason = state.reason ? `: ${state.reason}` : '';
      throw new Error(`file ${file.id}: processing ${state.state}${reason}`);
    }
    return false;
  };
  const open = () => [...files.keys()].filter((i) => files[i] && at[i] === undefined);
  for (;;) {
    const oldest = open()[0];
    if (oldest === undefined) {
      if (complete() && at.filter((t) => t !== undefined).length === files.length) {
        return { at, records, polls };
      }
    } else if (await check(oldest)) {
      // Files ready meanwhile are among the next few: ask about them in small parallel rounds.
      for (let next = open(); next.length > 0; next = open()) {
        const round = await Promise.all(next.slice(0, CATCH_UP).map(check));
        if (round.includes(false)) break;
      }
      continue;
    }
    if (performance.now() - progressAt > stallMs) {
      throw new Error(
        `no image ready for ${stallMs / 1000} s (${at.filter((t) => t !== undefined).length} of ` +
          `${files.length}): is this cluster's worker running?`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** Every record: both variants, of the right sizes; every thumbnail served with its sha256, a WebP of its size. */
async function checkTrove(
  ctx: BenchContext,
  photos: Photo[],
  uploaded: Uploaded[],
  records: Processing[],
): Promise<void> {
  for (const [i, p] of photos.entries()) {
    const { id } = uploaded[i]!;
    const thumb = records[i]?.variants?.thumbnail;
    const copy = records[i]?.variants?.compressed;
    const wrong = (what: string, v: Variant | undefined, edge: number) => {
      const want = fitInside(p, edge);
      if (v && v.content_type === 'image/webp' && near(v, want)) return undefined;
      return `${what} ${v ? `${v.content_type} ${v.width}×${v.height}` : 'missing'}, expected image/webp ${want.width}×${want.height}`;
    };
    const problem =
      wrong('thumbnail', thumb, THUMB.maxEdge) ?? wrong('compressed', copy, COPY.maxEdge);
    if (problem) {
      ctx.failures.push(`thumbnails: file ${id} (${p.name}): ${problem}`);
      continue;
    }
    const url = `${ctx.trove.origin}${ctx.trove.prefix}/files/${id}/thumbnail`;
    try {
      const res = await request(url, { dispatcher: ctx.dispatcher });
      const body = Buffer.from(await res.body.arrayBuffer());
      const meta = res.statusCode === 200 ? await sharp(body).metadata() : undefined;
      if (
        sha256(body) !== thumb!.sha256 ||
        meta?.format !== 'webp' ||
        meta.width !== thumb!.width ||
        meta.height !== thumb!.height
      ) {
        throw new Error(`${res.statusCode}, ${body.length} bytes, not the recorded thumbnail`);
      }
    } catch (err) {
      ctx.failures.push(`thumbnails: GET ${url}: ${(err as Error).message}`);
    }
  }
}

/** Deletes the run's files (untimed), so they do not wait an hour for their TTL. */
async function removeAll(ctx: BenchContext, files: Uploaded[]): Promise<void> {
  const failed: string[] = [];
  await Promise.all(
    files.map(async ({ id, token }) => {
      try {
        const res = await request(`${ctx.trove.origin}${ctx.trove.prefix}/files/${id}`, {
          method: 'DELETE',
          headers: { 'x-delete-token': token },
          dispatcher: ctx.dispatcher,
        });
        await res.body.dump();
        if (res.statusCode !== 204) failed.push(`${id} → ${res.statusCode}`);
      } catch (err) {
        failed.push(`${id}: ${(err as Error).message}`);
      }
    }),
  );
  if (failed.length > 0) {
    ctx.notes.push(
      `thumbnails: could not delete ${failed.length} file(s) (they expire in an hour): ${failed[0]}`,
    );
  }
}

function report(label: string, r: BatchRate, concurrency: number | undefined): void {
  progress(
    `thumbnails: ${label}: ${r.imagesPerS.toFixed(1)} images/s (${r.seconds.toFixed(2)} s` +
      `${concurrency ? `, ${concurrency} at a time` : ''}; ${r.cpuMsPerImage.toFixed(0)} ms CPU each)`,
  );
}

/** The round with the median images/s (the middle one of an odd number). */
function median(runs: BatchRate[]): BatchRate | undefined {
  const sorted = [...runs].sort((a, b) => a.imagesPerS - b.imagesPerS);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/**
 * Report rows. The first is the issue's figure: the worker's thumbnails/s
 * (20 queued jobs → 20 thumbnails recorded) over vipsthumbnail's, target ≥
 * 0.8. The two below say what the rest costs: the worker's "both variants
 * done" against vipsthumbnail doing both, and the worker's thumbnail call
 * alone in-process against vipsthumbnail.
 */
export function thumbnailRows(r: ThumbnailResults): Row[] {
  const { count, megapixels } = r.photos;
  const what = `${count} photos of ${megapixels.min.toFixed(1)}-${megapixels.max.toFixed(1)} MP`;
  const lanes = `${r.concurrency} at a time × ${r.threads} threads`;
  const vipsThumb = median(r.vipsThumb);
  const sharpThumb = median(r.sharpThumb);
  const t = r.trove;
  const rate = (x: BatchRate) =>
    `${fmt(x.imagesPerS)} images/s (${fmt(x.cpuMsPerImage)} ms CPU each)`;
  const skipped = 'skipped' in r.vipsthumbnail ? 'vipsthumbnail skipped (see notes)' : undefined;
  const vipsCell = (x: BatchRate | undefined, what: string) =>
    skipped ?? (x ? `vipsthumbnail ${what} ${rate(x)}` : `vipsthumbnail ${what}: no result`);
  const ratio = (a: BatchRate | undefined, b: BatchRate | undefined) =>
    a && b && b.imagesPerS > 0 ? a.imagesPerS / b.imagesPerS : undefined;
  const from = t?.paused ? 'from the worker resumed with 20 jobs queued' : 'from the first 201';
  const troveCell = t
    ? `${fmt(t.imagesPerS)} thumbnails/s (${count} in ${fmt(t.seconds)} s ${from}; ` +
      `uploads ${fmt(t.uploadS)} s before; one alone, upload to done: ${fmt(t.warmupS)} s; ` +
      `${fmt(t.cpuMsPerImage)} ms CPU each` +
      `${t.workerCpuMsPerImage === undefined ? '' : `, worker ${fmt(t.workerCpuMsPerImage)}`})`
    : 'no result';
  const firstRatio = ratio(t, vipsThumb);
  const row = (
    figure: string,
    trove: string,
    reference: string,
    value: number | undefined,
    target = '—',
    verdict: Row['verdict'] = '—',
  ): Row => ({ figure, trove, reference, ratio: value, target, verdict, swift: '—' });
  return [
    row(
      `thumbnails/s via the worker, ${what}`,
      troveCell,
      vipsCell(vipsThumb, `256 px WebP, ${lanes},`),
      firstRatio,
      `≥ ${TARGET}`,
      firstRatio === undefined ? 'n/a' : firstRatio >= TARGET ? 'ok' : 'MISS',
    ),
    row(
      `both variants: thumbnail + ≤ ${COPY.maxEdge} px copy, ${what}`,
      t
        ? `${fmt(t.both.imagesPerS)} images/s, both done (${fmt(t.both.seconds)} s, same start; ` +
            `${fmt(t.both.cpuMsPerImage)} ms CPU each)`
        : 'no result',
      vipsCell(r.vipsBoth, `256 px + ≤ ${COPY.maxEdge} px WebP,`),
      ratio(t?.both, r.vipsBoth),
    ),
    row(
      `thumbnail alone: the worker's sharp call in-process, ${what}`,
      sharpThumb ? `sharp ${rate(sharpThumb)}` : 'no result',
      vipsCell(vipsThumb, '256 px WebP,'),
      ratio(sharpThumb, vipsThumb),
    ),
  ];
}

/**
 * The Trove side of the thumbnail suite: the 20 photos uploaded through the
 * gateway while the worker is paused (SIGSTOP), then timed from the moment
 * it resumes (SIGCONT) until GET /files/:id of every one lists its
 * thumbnail, and on until every one is `done`; the CPU of each cluster
 * process (from its pid file under STORAGE_DIR/run/) over the same span.
 * Without the worker's pid file it cannot pause it: the clock then runs from
 * the first upload's 201, uploads included, and a note says so.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { pidFilePath } from '../../shared/pid-file.js';
import { SERVICES } from './cluster.js';
import { progress, safeJson, settle, type BenchContext } from './context.js';
import { sha256 } from './payload.js';
import type { Photo } from './photos.js';
import { cpuSeconds, isAlive, type Watched } from './procfs.js';
import { reportBatch, type BatchRate } from './thumbnail-batch.js';

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
const TIMEOUT_MS = 60_000;

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

export interface Uploaded {
  id: string;
  token: string;
  /** performance.now() when its request started. */
  sentAt: number;
  /** performance.now() of its 201. */
  at: number;
}

export interface Variant {
  width: number;
  height: number;
  content_type: string;
  sha256: string;
}

export interface Processing {
  state: string;
  reason?: string;
  variants?: { thumbnail?: Variant; compressed?: Variant };
}

/** A measured batch, and what the checks and the clean-up need of it. */
export interface TroveBatch {
  run: TroveThumbRun;
  /** The timed files, in the order of the photos, and their records once `done`. */
  uploaded: Uploaded[];
  records: Processing[];
  /** Every file uploaded (the warm-up photo too), to delete afterwards. */
  files: Uploaded[];
}

/**
 * The worker path: a warm-up image (untimed), then the 20 photos uploaded
 * UPLOAD_CONCURRENCY at a time with the worker paused, then the worker
 * resumed and the files polled in upload order, first for their thumbnails,
 * then for `done`.
 */
export async function troveBatch(
  ctx: BenchContext,
  photos: Photo[],
  storageDir: string,
): Promise<TroveBatch> {
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
  reportBatch('worker path (queued → thumbnails recorded)', result, undefined);
  reportBatch('worker path (queued → both variants done)', result.both, undefined);
  return { run: result, uploaded, records: done.records, files: [warm, ...uploaded] };
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

/** Deletes the run's files (untimed), so they do not wait an hour for their TTL. */
export async function removeAll(ctx: BenchContext, files: Uploaded[]): Promise<void> {
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

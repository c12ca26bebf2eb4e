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
 *
 * This file runs the sides in turn and makes the rows; each side is a module
 * of its own: thumbnail-trove.ts (the worker path), thumbnail-vips.ts
 * (vipsthumbnail), thumbnail-in-process.ts (the worker's sharp call), and
 * thumbnail-checks.ts (every output checked after the timed runs).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { loadWorkerConfig, type WorkerConfig } from '../../shared/config.js';
import { configureSharp } from '../../worker/image-variants.js';
import { progress, settle, type BenchContext } from './context.js';
import { makePhotos, PHOTO_SIZES } from './photos.js';
import { WORKER_DEFAULTS } from './service-defaults.js';
import { fmt, verdictOf, type Row } from './table.js';
import { COPY, THUMB, reportBatch, type BatchRate } from './thumbnail-batch.js';
import { checkOutputs, checkTrove } from './thumbnail-checks.js';
import { sharpThumbs } from './thumbnail-in-process.js';
import { removeAll, troveBatch, type TroveThumbRun } from './thumbnail-trove.js';
import {
  balance,
  copyArgs,
  thumbArgs,
  vipsBatch,
  vipsthumbnailBinary,
  type VipsThumbnail,
} from './thumbnail-vips.js';

/** Rounds of the cheap thumbnail-only references, interleaved around the Trove run; the median is shown. */
const THUMB_ROUNDS = 3;
const TARGET = 0.8;

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
  vipsthumbnail: VipsThumbnail;
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
  const worker = workerSettings(ctx);
  const concurrency = worker.imageConcurrency;
  // The limits the worker's own call runs under, for the in-process reference.
  const limits = { maxInputPixels: worker.maxInputPixels, timeLeftMs: worker.imageJobTimeoutMs };
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
  await sharpThumbs(paths.slice(0, 1), 1, limits); // loads libvips's JPEG and WebP code before anything is timed

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
        reportBatch(`vipsthumbnail ${THUMB.maxEdge} px`, run, concurrency);
        if (round === 1) await checkOutputs(ctx, out, photos, [['', THUMB.maxEdge]]);
      }
    }
    await settle();
    const run = await attempt(() => sharpThumbs(paths, concurrency, limits));
    if (run) {
      results.sharpThumb.push(run);
      reportBatch("worker's sharp call, thumbnail only, in-process", run, concurrency);
    }
  };

  try {
    await thumbRound(1);
    await settle();
    const batch = await attempt(() => troveBatch(ctx, photos, storageDir));
    if (batch) {
      results.trove = batch.run;
      await checkTrove(ctx, photos, batch.uploaded, batch.records);
      await removeAll(ctx, batch.files);
    }
    if (vips) {
      await settle();
      const out = join(dir, 'vips-both');
      const steps = (files: string[]) => [thumbArgs(files, out), copyArgs(files, out)];
      results.vipsBoth = await attempt(() => vipsBatch(vips, lanes, threads, steps, out));
      if (results.vipsBoth) {
        reportBatch(
          `vipsthumbnail ${THUMB.maxEdge} px + ≤ ${COPY.maxEdge} px copy`,
          results.vipsBoth,
          concurrency,
        );
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

/** The worker's settings as this shell's environment gives them, else its defaults (and a note). */
function workerSettings(
  ctx: BenchContext,
): Pick<WorkerConfig, 'imageConcurrency' | 'maxInputPixels' | 'imageJobTimeoutMs'> {
  try {
    return loadWorkerConfig(process.env);
  } catch (err) {
    ctx.notes.push(
      `thumbnails: worker settings unreadable here, IMAGE_CONCURRENCY ${WORKER_DEFAULTS.imageConcurrency} assumed (${err})`,
    );
    return WORKER_DEFAULTS;
  }
}

function skipReason(r: ThumbnailResults): string {
  return 'skipped' in r.vipsthumbnail ? r.vipsthumbnail.skipped : '';
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
  const from = t?.paused
    ? `from the worker resumed with ${count} jobs queued`
    : 'from the first 201';
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
      vipsCell(vipsThumb, `${THUMB.maxEdge} px WebP, ${lanes},`),
      firstRatio,
      `≥ ${TARGET}`,
      verdictOf(firstRatio, TARGET),
    ),
    row(
      `both variants: thumbnail + ≤ ${COPY.maxEdge} px copy, ${what}`,
      t
        ? `${fmt(t.both.imagesPerS)} images/s, both done (${fmt(t.both.seconds)} s, same start; ` +
            `${fmt(t.both.cpuMsPerImage)} ms CPU each)`
        : 'no result',
      vipsCell(r.vipsBoth, `${THUMB.maxEdge} px + ≤ ${COPY.maxEdge} px WebP,`),
      ratio(t?.both, r.vipsBoth),
    ),
    row(
      `thumbnail alone: the worker's sharp call in-process, ${what}`,
      sharpThumb ? `sharp ${rate(sharpThumb)}` : 'no result',
      vipsCell(vipsThumb, `${THUMB.maxEdge} px WebP,`),
      ratio(sharpThumb, vipsThumb),
    ),
  ];
}

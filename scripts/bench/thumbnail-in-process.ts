/**
 * The worker's own sharp call for the thumbnail, run in this process: the
 * thumbnail alone, without the queue, the transfers and the copies, so the
 * report can say what the rest of the worker path costs.
 */
import { readHeader, renderVariant, type RenderLimits } from '../../worker/image-variants.js';
import { THUMB, type BatchRate } from './thumbnail-batch.js';

/** The worker's thumbnail call (header check, then renderVariant) on `paths`, `concurrency` at a time. */
export async function sharpThumbs(
  paths: string[],
  concurrency: number,
  limits: RenderLimits,
): Promise<BatchRate> {
  const queue = [...paths];
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
        const header = await readHeader(path, limits.maxInputPixels);
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

/**
 * What every side of the thumbnail suite shares: the two variants the worker
 * makes (worker/image-variants.ts), and a batch's rate, as each side
 * measures it and the progress line shows it.
 */
import { VARIANT_SPECS } from '../../worker/image-variants.js';
import { progress } from './context.js';

export const THUMB = VARIANT_SPECS.find((s) => s.name === 'thumb')!;
export const COPY = VARIANT_SPECS.find((s) => s.name === 'compressed')!;

/** A batch of the 20 photos: wall time from the start (Trove: the first 201) to the last image. */
export interface BatchRate {
  seconds: number;
  imagesPerS: number;
  /** CPU per image, ms: the child processes (vipsthumbnail), this process (sharp), or the cluster (Trove). */
  cpuMsPerImage: number;
}

export function reportBatch(label: string, r: BatchRate, concurrency: number | undefined): void {
  progress(
    `thumbnails: ${label}: ${r.imagesPerS.toFixed(1)} images/s (${r.seconds.toFixed(2)} s` +
      `${concurrency ? `, ${concurrency} at a time` : ''}; ${r.cpuMsPerImage.toFixed(0)} ms CPU each)`,
  );
}

/**
 * What the variants of an image are and how sharp makes them.
 *
 * The original is read from a file on local disk: libvips then decodes it as
 * it reads (JPEG even at a reduced scale), where a stream piped into sharp is
 * first collected whole in memory. Both variants are upright (EXIF
 * orientation applied), carry no metadata, and are WebP: at equal SSIM it
 * came out 18-40% smaller than mozjpeg on every photo measured
 * (docs/jobs.md, "Image processing").
 *
 * Anything sharp refuses (a corrupt or truncated file, a format it cannot
 * read, more pixels than MAX_INPUT_PIXELS, the time limit) is an
 * UnprocessableImageError: the job ends `failed` with its reason, never retried.
 */
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import type { VariantName } from '../shared/metadata-store.js';

export interface VariantSpec {
  name: VariantName;
  /** Longest edge, in pixels; smaller images keep their size. */
  maxEdge: number;
  /** Keep every frame of an animated GIF or WebP (else the first frame only). */
  animated: boolean;
}

export const VARIANT_SPECS: readonly VariantSpec[] = [
  { name: 'thumb', maxEdge: 256, animated: false },
  { name: 'compressed', maxEdge: 2048, animated: true },
];

export const VARIANT_CONTENT_TYPE = 'image/webp';
export const WEBP_QUALITY = 80;

export interface RenderLimits {
  /** MAX_INPUT_PIXELS: width × height, times the frames of an animation. */
  maxInputPixels: number;
  /** Time left for this job, in ms. */
  timeLeftMs: number;
}

/** What the header says, read without decoding a pixel. */
export interface ImageHeader {
  width: number;
  /** Of one frame. */
  height: number;
  /** Frames: above 1 for an animation. */
  frames: number;
  format: string;
}

export interface RenderedVariant {
  name: VariantName;
  data: Buffer;
  width: number;
  /** Of one frame. */
  height: number;
  contentType: string;
}

/** An image that cannot be processed, for a reason that retrying would not change. */
export class UnprocessableImageError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'UnprocessableImageError';
  }
}

/** libvips threads per image from the core count; no operation cache (a worker sees each image once). */
export function configureSharp(cores = availableParallelism()): void {
  sharp.concurrency(cores);
  sharp.cache(false);
}

/** Reads the header of `path` and refuses an image over the pixel limit before anything is decoded. */
export async function readHeader(path: string, maxInputPixels: number): Promise<ImageHeader> {
  let meta;
  try {
    // The header only, with no limit of sharp's own: the check below names the dimensions.
    meta = await sharp(path, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new UnprocessableImageError(failureReason(err as Error, maxInputPixels));
  }
  const header = {
    width: meta.width ?? 0,
    height: meta.pageHeight ?? meta.height ?? 0,
    frames: meta.pages ?? 1,
    format: meta.format ?? 'unknown',
  };
  if (header.width <= 0 || header.height <= 0)
    throw new UnprocessableImageError('not an image sharp can read (no dimensions)');
  if (header.width * header.height > maxInputPixels)
    throw new UnprocessableImageError(
      `too large: ${header.width}×${header.height} pixels is more than MAX_INPUT_PIXELS (${maxInputPixels})`,
    );
  return header;
}

/** Whether the variant keeps the animation: only animations, and only within the pixel budget. */
export function keepsAnimation(spec: VariantSpec, header: ImageHeader, maxInputPixels: number) {
  return (
    spec.animated &&
    header.frames > 1 &&
    (header.format === 'gif' || header.format === 'webp') &&
    header.width * header.height * header.frames <= maxInputPixels
  );
}

/** Encodes one variant of the image at `path` (whose header passed `readHeader`). */
export async function renderVariant(
  path: string,
  spec: VariantSpec,
  header: ImageHeader,
  limits: RenderLimits,
): Promise<RenderedVariant> {
  const image = sharp(path, {
    limitInputPixels: limits.maxInputPixels,
    // The most sensitive level: a truncated or damaged file fails rather than yield half an image.
    failOn: 'warning',
    animated: keepsAnimation(spec, header, limits.maxInputPixels),
    autoOrient: true,
  })
    .resize(spec.maxEdge, spec.maxEdge, { fit: 'inside', withoutEnlargement: true })
    .webp({ quality: WEBP_QUALITY })
    .timeout({ seconds: Math.max(1, Math.ceil(limits.timeLeftMs / 1000)) });
  try {
    const { data, info } = await image.toBuffer({ resolveWithObject: true });
    return {
      name: spec.name,
      data,
      width: info.width,
      height: info.pageHeight ?? info.height,
      contentType: VARIANT_CONTENT_TYPE,
    };
  } catch (err) {
    throw new UnprocessableImageError(failureReason(err as Error, limits.maxInputPixels));
  }
}

/** A sharp failure as the reason a client reads in GET /files/:id. */
export function failureReason(err: Error, maxInputPixels: number): string {
  const message = err.message.split('\n')[0]!.trim();
  if (/pixel limit/i.test(message))
    return `too large: more pixels than MAX_INPUT_PIXELS (${maxInputPixels})`;
  if (/unsupported image format/i.test(message)) return 'unsupported image format';
  if (/^timeout/i.test(message)) return 'processing took longer than IMAGE_JOB_TIMEOUT_SECONDS';
  const detail = message.replace(/^Input (file|buffer) has corrupt header: /i, '').slice(0, 200);
  return `corrupt or truncated image: ${detail}`;
}

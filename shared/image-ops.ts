/**
 * Image processing for POST /process and /batch: the options (`op`, `width`,
 * `height`, `fit`, `format`, `quality`) and the sharp pipeline they build.
 *
 * Parsing is pure and strict, so a bad option is a 400 that names it before
 * a byte of the image is read. The pipeline runs on an input sharp holds or
 * reads itself (a finished stream, or a file), checks the decoded size
 * against MAX_INPUT_PIXELS, and answers one encoded image.
 */
import { createRequire } from 'node:module';
import type { Metadata, Sharp } from 'sharp';
import type SharpModule from 'sharp';
import { z } from 'zod';
import { BadRequestError, PayloadTooLargeError, TroveError } from './errors.js';
import { choiceParam, integerParam } from './string-params.js';

export const IMAGE_OPS = ['grayscale', 'resize', 'thumbnail'] as const;
export const OUTPUT_FORMATS = ['jpeg', 'webp', 'png', 'avif'] as const;
export const FITS = ['cover', 'contain', 'fill', 'inside', 'outside'] as const;
export const IMAGE_OPTION_NAMES = ['op', 'width', 'height', 'fit', 'format', 'quality'] as const;

export type ImageOp = (typeof IMAGE_OPS)[number];
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];
export type Fit = (typeof FITS)[number];
export type ImageOptionName = (typeof IMAGE_OPTION_NAMES)[number];

/** Largest width or height a request may ask for: past this, a typo, not a picture. */
export const MAX_DIMENSION = 8192;
/** Longest edge of a thumbnail when the request gives no size. */
export const THUMBNAIL_SIZE = 256;

/** Types sharp's prebuilt libvips decodes, by magic bytes; other images (BMP, HEIC, ICO…) are a 415. */
export const PROCESSABLE_TYPES = [
  'image/jpeg',
  'image/png',
  'image/webp',
  'image/gif',
  'image/avif',
  'image/tiff',
] as const;

export const FORMAT_TYPES: Record<OutputFormat, string> = {
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  png: 'image/png',
  avif: 'image/avif',
};

export const FORMAT_EXTENSIONS: Record<OutputFormat, string> = {
  jpeg: 'jpg',
  webp: 'webp',
  png: 'png',
  avif: 'avif',
};

/** Options as the request gave them, each already valid on its own. */
export interface GivenImageOptions {
  op?: ImageOp;
  width?: number;
  height?: number;
  fit?: Fit;
  format?: OutputFormat;
  quality?: number;
}

/** Everything the pipeline needs, defaults applied. */
export interface ImageOptions {
  op: ImageOp;
  width: number | undefined;
  height: number | undefined;
  fit: Fit;
  /** undefined: the input's own format when it is one of OUTPUT_FORMATS, else PNG. */
  format: OutputFormat | undefined;
  /** 1-100 for JPEG, WebP and AVIF; PNG is lossless and ignores it. */
  quality: number | undefined;
  /** False for thumbnails: a small image stays as it is rather than being blown up. */
  enlarge: boolean;
}

export interface ImageLimits {
  /** MAX_INPUT_PIXELS: largest width × height decoded, and largest result. */
  maxInputPixels: number;
}

export interface Size {
  width: number;
  height: number;
}

export interface ProcessedImage extends Size {
  data: Buffer;
  format: OutputFormat;
}

/** An image sharp could not decode or encode (truncated, corrupt, too large for its format). */
export class InvalidImageError extends TroveError {
  constructor(message: string) {
    super('INVALID_IMAGE', 422, message);
  }
}

export function isImageOptionName(name: string): name is ImageOptionName {
  return (IMAGE_OPTION_NAMES as readonly string[]).includes(name);
}

/**
 * The zod schema of each option, from its text (query parameter or form
 * field) to its value: what requests are validated with, and what
 * /openapi.json documents them from.
 */
export const IMAGE_OPTION_SCHEMAS = {
  op: choiceParam(IMAGE_OPS).meta({
    description: 'What to do. Required: here or as a form field before the file.',
    example: 'resize',
  }),
  width: integerParam(1, MAX_DIMENSION).meta({
    description: `Width in pixels. thumbnail: default ${THUMBNAIL_SIZE} (or height); otherwise unchanged.`,
    example: 320,
  }),
  height: integerParam(1, MAX_DIMENSION).meta({
    description: `Height in pixels. thumbnail: default ${THUMBNAIL_SIZE} (or width); otherwise unchanged.`,
    example: 240,
  }),
  fit: choiceParam(FITS).meta({
    description:
      "How width and height are filled (sharp's meanings). Default cover; thumbnail: inside.",
    example: 'inside',
  }),
  format: choiceParam(OUTPUT_FORMATS, { jpg: 'jpeg' }).meta({
    description:
      "Output format (jpg is jpeg). thumbnail: default webp; otherwise the input's, or png for GIF and TIFF.",
    example: 'jpeg',
  }),
  quality: integerParam(1, 100).meta({
    description:
      "Encoder quality; default the encoder's (JPEG and WebP 80, AVIF 50). PNG ignores it.",
    example: 70,
  }),
} satisfies Record<ImageOptionName, z.ZodType>;

/** The options as a query string (any of them may come as form fields instead; an unknown one is a 400). */
export const IMAGE_OPTIONS_QUERY = z.strictObject({
  op: IMAGE_OPTION_SCHEMAS.op.optional(),
  width: IMAGE_OPTION_SCHEMAS.width.optional(),
  height: IMAGE_OPTION_SCHEMAS.height.optional(),
  fit: IMAGE_OPTION_SCHEMAS.fit.optional(),
  format: IMAGE_OPTION_SCHEMAS.format.optional(),
  quality: IMAGE_OPTION_SCHEMAS.quality.optional(),
});

/** What a valid value looks like, as the 400 says it. */
const EXPECTED: Record<ImageOptionName, string> = {
  op: `one of ${IMAGE_OPS.join(', ')}`,
  width: `an integer from 1 to ${MAX_DIMENSION}`,
  height: `an integer from 1 to ${MAX_DIMENSION}`,
  fit: `one of ${FITS.join(', ')}`,
  format: `one of ${OUTPUT_FORMATS.join(', ')}`,
  quality: 'an integer from 1 to 100',
};

/**
 * Validates one option (from the query string or a form field) into `given`;
 * throws 400 naming it, or naming an option that does not exist (a typo such
 * as `widht` must not be silently ignored).
 */
export function setImageOption(given: GivenImageOptions, name: string, raw: string): void {
  if (!isImageOptionName(name)) {
    throw new BadRequestError(
      `unknown option "${name.slice(0, 40)}"; options are ${IMAGE_OPTION_NAMES.join(', ')}`,
      'UNKNOWN_OPTION',
    );
  }
  const parsed = IMAGE_OPTION_SCHEMAS[name].safeParse(raw);
  if (!parsed.success) {
    throw new BadRequestError(
      `${name} must be ${EXPECTED[name]}, got "${raw.slice(0, 40)}"`,
      'INVALID_OPTION',
    );
  }
  (given as Record<ImageOptionName, unknown>)[name] = parsed.data;
}

/** Every parameter of a query string, validated. */
export function imageOptionsFromQuery(query: Record<string, string>): GivenImageOptions {
  const given: GivenImageOptions = {};
  for (const [name, raw] of Object.entries(query)) setImageOption(given, name, raw);
  return given;
}

/** Checks how the options go together and applies the defaults; throws 400 naming the culprit. */
export function resolveImageOptions(given: GivenImageOptions): ImageOptions {
  const { op } = given;
  if (op === undefined) {
    throw new BadRequestError(`op is required: one of ${IMAGE_OPS.join(', ')}`, 'INVALID_OPTION');
  }
  if (op === 'thumbnail') {
    // One edge given: a square box of that size, so it is still the longest edge.
    const width = given.width ?? given.height ?? THUMBNAIL_SIZE;
    const height = given.height ?? given.width ?? THUMBNAIL_SIZE;
    return {
      op,
      width,
      height,
      fit: given.fit ?? 'inside',
      format: given.format ?? 'webp',
      quality: given.quality,
      enlarge: false,
    };
  }
  const sized = given.width !== undefined || given.height !== undefined;
  if (op === 'resize' && !sized) {
    throw new BadRequestError('op=resize needs width, height or both', 'INVALID_OPTION');
  }
  if (given.fit !== undefined && !sized) {
    throw new BadRequestError('fit applies only with width or height', 'INVALID_OPTION');
  }
  return {
    op,
    width: given.width,
    height: given.height,
    fit: given.fit ?? 'cover',
    format: given.format,
    quality: given.quality,
    enlarge: true,
  };
}

/** The format to write: the one asked for, else the input's own when sharp can write it, else PNG. */
export function outputFormat(options: ImageOptions, inputType: string): OutputFormat {
  if (options.format) return options.format;
  const same = OUTPUT_FORMATS.find((f) => FORMAT_TYPES[f] === inputType);
  return same ?? 'png';
}

/**
 * The size of the result (an upper bound where sharp rounds), from the
 * upright input size: what the pixel budget is checked against before any
 * pixel is decoded.
 */
export function outputSize(options: ImageOptions, input: Size): Size {
  const { width: w, height: h } = options;
  if (w === undefined && h === undefined) return input;
  const cap = (s: number) => (options.enlarge ? s : Math.min(s, 1));
  const scaled = (s: number): Size => ({
    width: Math.max(1, Math.round(input.width * cap(s))),
    height: Math.max(1, Math.round(input.height * cap(s))),
  });
  if (w === undefined) return scaled(h! / input.height);
  if (h === undefined) return scaled(w / input.width);
  const sx = w / input.width;
  const sy = h / input.height;
  if (options.fit === 'inside') return scaled(Math.min(sx, sy));
  if (options.fit === 'outside') return scaled(Math.max(sx, sy));
  // cover, contain and fill answer the box itself (at most, without enlargement).
  return options.enlarge
    ? { width: w, height: h }
    : { width: Math.min(w, input.width), height: Math.min(h, input.height) };
}

const require = createRequire(import.meta.url);
let loaded: typeof SharpModule | undefined;
let noCache = false;

/**
 * sharp, loaded on first use rather than at start-up: libvips and its
 * bindings are 15-25 MB of a gateway's resident memory, which one that never
 * processes an image need not carry. (A synchronous require, so openImage
 * stays synchronous; sharp's CommonJS build is the same library.)
 */
function sharpLibrary(): typeof SharpModule {
  if (!loaded) {
    loaded = require('sharp') as typeof SharpModule;
    if (noCache) loaded.cache(false);
  }
  return loaded;
}

/** Global sharp settings for a long-running server: no operation cache (it keeps deleted files open and memory held). Applied when sharp loads. */
export function configureSharp(): void {
  noCache = true;
  loaded?.cache(false);
}

/** A sharp instance reading `file`, or, without one, a Writable to pipe the image into. */
export function openImage(limits: ImageLimits, file?: string): Sharp {
  // failOn 'warning' (the default) refuses truncated data rather than answering half an image.
  const options = { limitInputPixels: limits.maxInputPixels, failOn: 'warning' as const };
  const sharp = sharpLibrary();
  return file === undefined ? sharp(options) : sharp(file, options);
}

/**
 * Applies `options` to `image` (whose input is complete: a finished stream
 * or a file) and encodes the result. `name` is how errors call the image.
 */
export async function processImage(
  image: Sharp,
  options: ImageOptions,
  inputType: string,
  limits: ImageLimits,
  name: string,
): Promise<ProcessedImage> {
  const meta = await image.metadata().catch((err: Error) => {
    throw imageError(err, name, limits);
  });
  checkResult(options, meta, limits);
  const format = outputFormat(options, inputType);
  applyOps(image, options, format, meta.hasAlpha);
  const { data, info } = await image.toBuffer({ resolveWithObject: true }).catch((err: Error) => {
    throw imageError(err, name, limits);
  });
  return { data, format, width: info.width, height: info.height };
}

/**
 * Refuses a result over the pixel budget before a pixel is decoded (a 10×1000
 * image resized to width=8000 is 8000×800000). The input's own size is
 * sharp's limitInputPixels, checked when it reads the header.
 */
function checkResult(options: ImageOptions, meta: Metadata, limits: ImageLimits): void {
  const out = outputSize(options, meta.autoOrient);
  if (out.width * out.height > limits.maxInputPixels) {
    const which = options.width !== undefined ? 'width' : 'height';
    throw new BadRequestError(
      `${which}: the result would be ${out.width}×${out.height} pixels, more than MAX_INPUT_PIXELS (${limits.maxInputPixels})`,
      'INVALID_OPTION',
    );
  }
}

/** The pipeline itself: upright, resized, grey if asked, then encoded. sharp orders the steps itself. */
export function applyOps(
  image: Sharp,
  options: ImageOptions,
  format: OutputFormat,
  hasAlpha: boolean,
): Sharp {
  // Upright from the EXIF orientation; the output carries no metadata (no GPS leaves with it).
  image.autoOrient();
  if (options.width !== undefined || options.height !== undefined) {
    image.resize({
      width: options.width,
      height: options.height,
      fit: options.fit,
      withoutEnlargement: !options.enlarge,
      // What `contain` pads with: transparent where the format has alpha, white for JPEG.
      background: format === 'jpeg' ? '#ffffff' : { r: 0, g: 0, b: 0, alpha: 0 },
    });
  }
  // grayscale() alone still writes three equal channels; b-w makes JPEG and PNG one channel (WebP and AVIF stay RGB).
  if (options.op === 'grayscale') image.grayscale().toColourspace('b-w');
  // JPEG has no alpha: transparent areas go white rather than sharp's default black.
  if (format === 'jpeg' && hasAlpha) image.flatten({ background: '#ffffff' });
  const quality = format === 'png' ? {} : options.quality ? { quality: options.quality } : {};
  return image.toFormat(format, quality);
}

/** A sharp failure as the client should see it: too many pixels is a 413, anything else 422. */
export function imageError(err: Error, name: string, limits: ImageLimits): TroveError {
  if (err instanceof TroveError) return err;
  if (/pixel limit/i.test(err.message)) {
    return new PayloadTooLargeError(
      `"${name}" has more pixels than MAX_INPUT_PIXELS (${limits.maxInputPixels})`,
    );
  }
  return new InvalidImageError(`"${name}" could not be processed: ${err.message}`);
}

/** `photo.jpg` → `photo.webp`; `processed.webp` when the input had no name. */
export function outputName(inputName: string | undefined, format: OutputFormat): string {
  const base = inputName?.replace(/\.[^.]*$/, '') || 'processed';
  return `${base}.${FORMAT_EXTENSIONS[format]}`;
}

/**
 * POST /process: one image in (multipart `file`, or the raw body), the
 * processed image out, nothing stored. Options come from the query string
 * and, for multipart, from form fields sent before the file.
 *
 * The image streams through the size limit and the magic-byte check into a
 * temp file that sharp reads (image-spool.ts), so no upload is held in
 * memory; the processed image is, to answer with its length (or a clean 4xx
 * if sharp fails). A request holds a processing slot from before its body is
 * read until its answer is ready; with every slot taken it is a 503 at once.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { GatewayConfig } from '../shared/config.js';
import { BadRequestError, PayloadTooLargeError } from '../shared/errors.js';
import {
  configureSharp,
  FORMAT_TYPES,
  imageOptionsFromQuery,
  openImage,
  outputName,
  processImage,
  resolveImageOptions,
  setImageOption,
  type GivenImageOptions,
  type ImageLimits,
  type ImageOptions,
  type ProcessedImage,
} from '../shared/image-ops.js';
import { cleanFileName, contentDisposition } from './http-names.js';
import { isMultipart, readImageForm } from './image-form.js';
import { spoolImage } from './image-spool.js';
import { ProcessSlots } from './process-slots.js';
import { disconnectSignal } from './request-signal.js';

type Ctx = Context<{ Bindings: HttpBindings }>;

/** What /process and /batch share: the slots and the limits. */
export interface ProcessingDeps {
  slots: ProcessSlots;
  image: ImageLimits;
  maxBatchFiles: number;
  maxBatchBytes: number;
}

export interface ProcessDeps {
  maxUploadBytes: number;
  processing: ProcessingDeps;
  /** This gateway's spool directory: inputs wait there as files while sharp reads them. */
  spoolDir: string;
}

type ProcessingConfig = Pick<
  GatewayConfig,
  'processConcurrency' | 'maxInputPixels' | 'maxBatchFiles' | 'maxBatchBytes'
>;

export function createProcessing(config: ProcessingConfig): ProcessingDeps {
  configureSharp();
  return {
    slots: new ProcessSlots(config.processConcurrency),
    image: { maxInputPixels: config.maxInputPixels },
    maxBatchFiles: config.maxBatchFiles,
    maxBatchBytes: config.maxBatchBytes,
  };
}

export async function handleProcess(deps: ProcessDeps, c: Ctx) {
  const given = imageOptionsFromQuery(c.req.query());
  const multipart = isMultipart(c.req.header('content-type'));
  // A raw body carries no fields: every option is known now, so refuse bad ones before taking a slot.
  const options = multipart ? undefined : resolveImageOptions(given);
  if (!multipart) refuseDeclaredLength(c.req.header('content-length'), deps.maxUploadBytes);
  const release = deps.processing.slots.acquire();
  try {
    const clientGone = disconnectSignal(c.env.outgoing, c.env.incoming);
    const made = options
      ? await processRaw(deps, c, options, clientGone)
      : await processForm(deps, c, given, clientGone);
    return respondImage(c, made);
  } finally {
    release();
  }
}

/** An image made, and the name of the upload it came from (none for a raw body). */
interface Made {
  image: ProcessedImage;
  name: string | undefined;
}

function respondImage(c: Ctx, { image, name }: Made) {
  return c.body(asBytes(image.data), 200, {
    'content-type': FORMAT_TYPES[image.format],
    'content-length': String(image.data.length),
    'content-disposition': contentDisposition('inline', outputName(name, image.format)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-image-width': String(image.width),
    'x-image-height': String(image.height),
  });
}

/** sharp's Buffer as the Uint8Array<ArrayBuffer> Hono takes (sharp never hands out shared memory). */
function asBytes(data: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.length);
}

function refuseDeclaredLength(header: string | undefined, limit: number): void {
  if (header !== undefined && /^\d+$/.test(header) && Number(header) > limit) {
    throw new PayloadTooLargeError(`the image is larger than MAX_UPLOAD_BYTES (${limit} bytes)`);
  }
}

async function processRaw(
  deps: ProcessDeps,
  c: Ctx,
  options: ImageOptions,
  clientGone: AbortSignal,
): Promise<Made> {
  const image = await processUpload(deps, c.env.incoming, undefined, options, clientGone);
  return { image, name: undefined };
}

async function processForm(
  deps: ProcessDeps,
  c: Ctx,
  given: GivenImageOptions,
  clientGone: AbortSignal,
): Promise<Made> {
  let result: Made | undefined;
  await readImageForm(
    c.env.incoming,
    c.env.incoming.headers,
    {
      maxFiles: 1,
      tooManyFiles: () =>
        new BadRequestError(
          'POST /process takes one image; send several to POST /batch',
          'TOO_MANY_FILES',
        ),
      onField: (name, value) => setImageOption(given, name, value),
      async onFile(stream, filename, _index, signal) {
        const options = resolveImageOptions(given);
        const name = filename === undefined ? undefined : cleanFileName(filename);
        result = { image: await processUpload(deps, stream, name, options, signal), name };
      },
    },
    clientGone,
  );
  if (!result) {
    throw new BadRequestError('no image in the form: send it in a field named "file"', 'NO_FILE');
  }
  return result;
}

/**
 * One image from a stream: spooled to a temp file (size limit, magic-byte
 * check), then sharp's pipeline over the file; the file is removed after.
 */
export async function processUpload(
  deps: ProcessDeps,
  source: Readable,
  name: string | undefined,
  options: ImageOptions,
  signal: AbortSignal,
): Promise<ProcessedImage> {
  const label = name ?? 'request body';
  const path = join(deps.spoolDir, `process-${randomBytes(8).toString('hex')}`);
  try {
    const type = await spoolImage(source, path, { label, maxBytes: deps.maxUploadBytes, signal });
    const limits = deps.processing.image;
    return await processImage(openImage(limits, path), options, type, limits, label);
  } finally {
    await rm(path, { force: true });
  }
}

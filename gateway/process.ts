/**
 * POST /process: one image in (multipart `file`, or the raw body), the
 * processed image out, nothing stored. Options come from the query string
 * and, for multipart, from form fields sent before the file.
 *
 * The image streams through the size limit and the magic-byte check into
 * sharp, which holds the encoded bytes (it decodes from memory); nothing
 * else keeps them. A request holds a processing slot from before its body is
 * read until its answer is ready; with every slot taken it is a 503 at once.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import type { Readable } from 'node:stream';
import type { GatewayConfig } from '../shared/config.js';
import { BadRequestError, ClientGoneError, PayloadTooLargeError } from '../shared/errors.js';
import {
  configureSharp,
  FORMAT_TYPES,
  imageOptionsFromQuery,
  openImage,
  outputName,
  PROCESSABLE_TYPES,
  processImage,
  resolveImageOptions,
  setImageOption,
  type GivenImageOptions,
  type ImageLimits,
  type ImageOptions,
  type ProcessedImage,
} from '../shared/image-ops.js';
import { ByteLimit, pipeChain } from '../shared/streams.js';
import { TypeSniffer } from './content-type.js';
import { cleanFileName, contentDisposition } from './http-names.js';
import { isMultipart, readImageForm } from './image-form.js';
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
 * One image from a stream: size limit → magic-byte check → sharp, then the
 * pipeline. `source` is piped, never handed to pipeChain: on failure it is
 * only unpiped, so the request stays intact and can still be answered.
 */
export async function processUpload(
  deps: ProcessDeps,
  source: Readable,
  name: string | undefined,
  options: ImageOptions,
  signal: AbortSignal,
): Promise<ProcessedImage> {
  const label = name ?? 'request body';
  const max = deps.maxUploadBytes;
  const limit = new ByteLimit(
    max,
    () => new PayloadTooLargeError(`"${label}" is larger than MAX_UPLOAD_BYTES (${max} bytes)`),
  );
  const sniffer = new TypeSniffer(PROCESSABLE_TYPES, label);
  const image = openImage(deps.processing.image);
  let streamError: Error | undefined;
  for (const stage of [limit, sniffer, image])
    stage.once('error', (err: Error) => (streamError ??= err));
  const streamed = pipeChain(limit, sniffer, image);
  streamed.catch(() => undefined); // awaited below, or superseded by the sniffer's verdict
  const stop = () =>
    limit.destroy(signal.reason instanceof Error ? signal.reason : new ClientGoneError());
  if (signal.aborted) stop();
  signal.addEventListener('abort', stop, { once: true });
  source.once('error', (err) => limit.destroy(err));
  source.pipe(limit);
  try {
    const type = await sniffer.type;
    await streamed;
    return await processImage(image, options, type, deps.processing.image, label);
  } catch (err) {
    source.unpipe(limit);
    throw streamError ?? err;
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

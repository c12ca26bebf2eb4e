/**
 * POST /process: one image in (multipart `file`, or the raw body), the
 * processed image out, nothing stored. Options come from the query string
 * and, for multipart, from form fields sent before the file.
 *
 * The image streams through the size limit and the magic-byte check into a
 * temp file that sharp reads (image-spool.ts), so no upload is held in
 * memory; the processed image is, to answer with its length (or a clean 4xx
 * if sharp fails). The body must keep coming at the minimum rate
 * (paced-body.ts) and its bytes fit in the spool budget (spool-budget.ts).
 * A processing slot is taken only once the whole body is in, for the decode
 * alone: a client however slow holds none while it sends. With every slot
 * taken the answer is a 503 at once and the input is removed.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { GatewayConfig } from '../../shared/config.js';
import { BadRequestError, PayloadTooLargeError } from '../../shared/errors.js';
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
  type ImageOptions,
  type ProcessedImage,
} from '../../shared/image-ops.js';
import type { MinRateRule } from '../../shared/min-rate.js';
import { cleanFileName, contentDisposition } from '../http/http-names.js';
import { isMultipart, readImageForm } from './image-form.js';
import { spoolImage } from './image-spool.js';
import { pacedBody } from './paced-body.js';
import { ProcessSlots } from './process-slots.js';
import { disconnectSignal } from '../http/request-signal.js';
import { SpoolBudget, type SpoolClaim } from './spool-budget.js';

type Ctx = Context<{ Bindings: HttpBindings }>;

/** What /process and /batch share, made once per gateway: the decode slots and the spool budget. */
export interface ProcessingParts {
  processSlots: ProcessSlots;
  /** PROCESS_SPOOL_BYTES: the inputs being received and processed, together. */
  spoolBudget: SpoolBudget;
}

export interface ProcessDeps extends ProcessingParts {
  /** MAX_UPLOAD_BYTES holds each image. */
  uploads: GatewayConfig['uploads'];
  processing: GatewayConfig['processing'];
  /** This gateway's spool directory: inputs wait there as files while sharp reads them. */
  spoolDir: string;
}

export function createProcessing(config: GatewayConfig['processing']): ProcessingParts {
  configureSharp();
  return {
    processSlots: new ProcessSlots(config.processConcurrency),
    spoolBudget: new SpoolBudget(config.processSpoolBytes),
  };
}

/** BODY_TIMEOUT_SECONDS and BODY_MIN_RATE, as the rule a body is paced by. */
export function bodyRate(config: GatewayConfig['processing']): MinRateRule {
  return { graceMs: config.bodyTimeoutSeconds * 1000, bytesPerSecond: config.bodyMinRate };
}

export async function handleProcess(deps: ProcessDeps, c: Ctx) {
  const given = imageOptionsFromQuery(c.req.query());
  const multipart = isMultipart(c.req.header('content-type'));
  // A raw body carries no fields: every option is known now, so refuse bad ones before reading it.
  const options = multipart ? undefined : resolveImageOptions(given);
  if (!multipart) refuseDeclaredLength(c.req.header('content-length'), deps.uploads.maxUploadBytes);
  const path = join(deps.spoolDir, `process-${randomBytes(8).toString('hex')}`);
  const claim = deps.spoolBudget.claim();
  const body = pacedBody(c.env.incoming, bodyRate(deps.processing));
  try {
    const clientGone = disconnectSignal(c.env.outgoing, c.env.incoming);
    const into: Destination = { deps, path, claim, signal: clientGone };
    const input = options
      ? await receiveRaw(body.stream, options, into)
      : await receiveForm(body.stream, c.env.incoming.headers, given, into);
    const image = await decode(deps, input);
    return respondImage(c, image, input.name);
  } finally {
    body.release();
    await rm(path, { force: true });
    claim.release();
  }
}

/** Where a request's input goes: its temp file, and its share of the spool. */
interface Destination {
  deps: ProcessDeps;
  path: string;
  claim: SpoolClaim;
  signal: AbortSignal;
}

/** The input on disk, with what its decode needs. */
interface Received {
  path: string;
  type: string;
  /** The upload's file name (none for a raw body). */
  name: string | undefined;
  label: string;
  options: ImageOptions;
}

function respondImage(c: Ctx, image: ProcessedImage, name: string | undefined) {
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

async function receiveRaw(
  source: Readable,
  options: ImageOptions,
  into: Destination,
): Promise<Received> {
  return { ...(await spool(source, undefined, into, into.signal)), options };
}

/** The form's one file on disk; its decode waits for the end of the form (a second file is a 400). */
async function receiveForm(
  source: Readable,
  headers: IncomingHttpHeaders,
  given: GivenImageOptions,
  into: Destination,
): Promise<Received> {
  let received: Received | undefined;
  await readImageForm(
    source,
    headers,
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
        received = { ...(await spool(stream, name, into, signal)), options };
      },
    },
    into.signal,
  );
  if (!received) {
    throw new BadRequestError('no image in the form: send it in a field named "file"', 'NO_FILE');
  }
  return received;
}

async function spool(
  source: Readable,
  name: string | undefined,
  { deps, path, claim }: Destination,
  signal: AbortSignal,
): Promise<Omit<Received, 'options'>> {
  const label = name ?? 'request body';
  const maxBytes = deps.uploads.maxUploadBytes;
  const type = await spoolImage(source, path, { label, maxBytes, signal, claim });
  return { path, type, name, label };
}

/**
 * sharp's pipeline over the spooled file, under a processing slot taken only
 * now: the slot bounds the decodes (a whole image in memory, a core busy), and
 * a busy gateway answers 503 PROCESSING_BUSY at once.
 */
async function decode(deps: ProcessDeps, input: Received): Promise<ProcessedImage> {
  const release = deps.processSlots.acquire();
  try {
    const limits = deps.processing;
    const file = openImage(limits, input.path);
    return await processImage(file, input.options, input.type, limits, input.label);
  } finally {
    release();
  }
}

/**
 * POST /batch: several images in (multipart `file` parts), a ZIP of the
 * processed images out, nothing stored. Same options as /process.
 *
 * Two phases, so that every refusal of the request itself is a clean status:
 *
 * 1. Receive: each part goes through the per-file size limit and the
 *    magic-byte check into a temp file (under the gateway's spool directory,
 *    never in memory), the whole body through MAX_BATCH_BYTES and the minimum
 *    body rate, every byte into the spool budget, and busboy counts the files
 *    against MAX_BATCH_FILES. A non-image part (415, naming it), a size or
 *    count over a limit (413), a body too slow (408), no room (503 SPOOL_FULL),
 *    no file (400): the answer is that status, before any byte of a ZIP. No
 *    processing slot is held yet, so a slow client blocks nobody.
 * 2. Process, one image at a time, under one processing slot taken once every
 *    part is on disk (none free: 503 PROCESSING_BUSY, the parts removed) and
 *    held until the ZIP is complete. One slot, not one per image: the batch
 *    decodes one image at a time, so a slot still bounds one decode, and a
 *    batch whose ZIP has started never finds itself without a slot for its
 *    next image, with no status left to say so. Each image is appended to a
 *    ZIP that streams to the client as entries are made.
 *    The headers go out with the first image that processed. An image that
 *    sharp cannot process (corrupt, too many pixels) is not a reason to throw
 *    away the others: it is left out and listed in an `errors.txt` entry at
 *    the end of the ZIP. Only if every image fails is the answer that error's
 *    status. Anything else after the headers (the client gone, a disk error)
 *    aborts the response: the ZIP ends without its central directory, which
 *    every unzip reports as a damaged archive, never as a complete one.
 */
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { ZipArchive } from 'archiver';
import type { Context } from 'hono';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { BadRequestError, PayloadTooLargeError, TroveError } from '../../shared/errors.js';
import {
  imageOptionsFromQuery,
  openImage,
  outputName,
  processImage,
  resolveImageOptions,
  setImageOption,
  type GivenImageOptions,
  type ImageOptions,
} from '../../shared/image-ops.js';
import type { Logger } from '../../shared/logger.js';
import { ByteLimit, pipeChain } from '../../shared/streams.js';
import { cleanFileName, contentDisposition } from '../http/http-names.js';
import { isMultipart, readImageForm } from './image-form.js';
import { spoolImage } from './image-spool.js';
import { pacedBody } from './paced-body.js';
import type { Release } from './process-slots.js';
import { bodyRate, type ProcessDeps } from './process.js';
import { disconnectSignal } from '../http/request-signal.js';
import type { SpoolClaim } from './spool-budget.js';

type Ctx = Context<{ Bindings: HttpBindings }>;

export interface BatchDeps extends ProcessDeps {
  log: Logger;
}

/** A received part: on disk, its type known from its magic bytes. */
interface SpooledImage {
  path: string;
  name: string;
  /** How errors name it: `b.jpg (file 2)`. */
  label: string;
  type: string;
}

interface Failure {
  image: SpooledImage;
  error: TroveError;
}

export async function handleBatch(deps: BatchDeps, c: Ctx) {
  if (!isMultipart(c.req.header('content-type'))) {
    throw new BadRequestError(
      'POST /batch expects multipart/form-data with one or more "file" fields (curl -F file=@a.jpg -F file=@b.png)',
      'NOT_MULTIPART',
    );
  }
  const given = imageOptionsFromQuery(c.req.query());
  const length = c.req.header('content-length');
  if (
    length !== undefined &&
    /^\d+$/.test(length) &&
    Number(length) > deps.processing.maxBatchBytes
  )
    throw batchTooLarge(deps.processing.maxBatchBytes);
  const dir = await mkdtemp(join(deps.spoolDir, 'batch-'));
  const claim = deps.spoolBudget.claim();
  const body = pacedBody(c.env.incoming, bodyRate(deps.processing));
  let release: Release | undefined;
  try {
    const clientGone = disconnectSignal(c.env.outgoing, c.env.incoming);
    const into: PartDestination = { dir, claim, signal: clientGone };
    const { options, images } = await receive(deps, c, body.stream, given, into);
    release = deps.processSlots.acquire();
    return await respondZip(deps, c, options, images, clientGone);
  } finally {
    release?.();
    body.release();
    await rm(dir, { recursive: true, force: true });
    claim.release();
  }
}

const batchTooLarge = (max: number) =>
  new PayloadTooLargeError(`the batch is larger than MAX_BATCH_BYTES (${max} bytes)`);

/** Where the parts of a batch go: its temp directory, and its share of the spool. */
interface PartDestination {
  dir: string;
  claim: SpoolClaim;
  signal: AbortSignal;
}

/** Phase 1: every part validated and on disk, or a status. */
async function receive(
  deps: BatchDeps,
  c: Ctx,
  source: Readable,
  given: GivenImageOptions,
  into: PartDestination,
): Promise<{ options: ImageOptions; images: SpooledImage[] }> {
  const max = deps.processing.maxBatchBytes;
  const total = new ByteLimit(max, () => batchTooLarge(max));
  const images: SpooledImage[] = [];
  let options: ImageOptions | undefined;
  // pipe() does not pass errors on: the body's own (too slow) must reach the form reader.
  const sourceFailed = (err: Error) => total.destroy(err);
  source.once('error', sourceFailed);
  source.pipe(total);
  try {
    await readImageForm(
      total,
      c.env.incoming.headers,
      {
        maxFiles: deps.processing.maxBatchFiles,
        tooManyFiles: () =>
          new PayloadTooLargeError(
            `at most ${deps.processing.maxBatchFiles} images per batch (MAX_BATCH_FILES)`,
          ),
        onField: (name, value) => setImageOption(given, name, value),
        async onFile(stream, filename, index, signal) {
          options ??= resolveImageOptions(given);
          // By index: a small part may finish spooling before a larger one ahead of it.
          images[index - 1] = await spool(deps, stream, cleanFileName(filename), index, {
            ...into,
            signal,
          });
        },
      },
      into.signal,
    );
  } catch (err) {
    source.unpipe(total);
    throw err;
  } finally {
    source.off('error', sourceFailed);
  }
  if (!options || images.length === 0) {
    throw new BadRequestError('no image in the form: send them in fields named "file"', 'NO_FILE');
  }
  return { options, images };
}

/** One part to a temp file through the per-file size limit and the magic-byte check. */
async function spool(
  deps: BatchDeps,
  stream: Readable,
  name: string,
  index: number,
  { dir, claim, signal }: PartDestination,
): Promise<SpooledImage> {
  const label = `${name} (file ${index})`;
  const path = join(dir, String(index));
  const maxBytes = deps.uploads.maxUploadBytes;
  const type = await spoolImage(stream, path, { label, maxBytes, signal, claim });
  return { path, name, label, type };
}

/** Phase 2: the ZIP, streamed; see the top of this file for what a failure does. */
async function respondZip(
  deps: BatchDeps,
  c: Ctx,
  options: ImageOptions,
  images: SpooledImage[],
  clientGone: AbortSignal,
) {
  const failures: Failure[] = [];
  const pending = [...images];
  // Before the headers, a failure can still be a status: go on until one image works.
  let first: Made | undefined;
  while (!first && pending.length > 0)
    first = await make(deps, options, pending.shift()!, failures);
  if (!first) throw allFailed(failures);

  const out = c.env.outgoing;
  out.writeHead(200, {
    'content-type': 'application/zip',
    'content-disposition': contentDisposition('attachment', 'images.zip'),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  // Images are compressed already: deflate would spend CPU to save nothing.
  const archive = new ZipArchive({ store: true });
  const sent = pipeChain(archive, out);
  sent.catch(() => undefined); // awaited at the end; a failure before then surfaces through the archive
  // A client that leaves stops reading: the archive would wait on backpressure for ever and the
  // slot would never come back. Destroying it ends the entry being written (see appendEntry).
  const abandon = () => archive.destroy();
  if (clientGone.aborted) abandon();
  clientGone.addEventListener('abort', abandon, { once: true });
  try {
    const next = async () => {
      if (clientGone.aborted) throw clientGone.reason;
      return make(deps, options, pending.shift()!, failures);
    };
    await writeEntries(archive, first, pending.length, next, failures);
    if (archive.destroyed) throw new Error('the ZIP stream closed early');
    await archive.finalize();
    await sent;
  } catch (err) {
    if (clientGone.aborted) return RESPONSE_ALREADY_SENT;
    throw err; // headers are out: the error handler cuts the response short
  } finally {
    clientGone.removeEventListener('abort', abandon);
  }
  if (failures.length > 0) {
    const counts = { failed: failures.length, images: images.length };
    deps.log.info(counts, 'batch answered with errors.txt');
  }
  return RESPONSE_ALREADY_SENT;
}

/** An image made: its result and the entry name it asks for. */
interface Made {
  data: Buffer;
  name: string;
}

/** Appends `first`, then each of the `more` images `next` makes, then errors.txt if any failed. */
async function writeEntries(
  archive: ZipArchive,
  first: Made,
  more: number,
  next: () => Promise<Made | undefined>,
  failures: Failure[],
): Promise<void> {
  const names = new EntryNames();
  await appendEntry(archive, first.data, names.take(first.name));
  for (let i = 0; i < more; i++) {
    const made = await next();
    if (made) await appendEntry(archive, made.data, names.take(made.name));
  }
  if (failures.length > 0)
    await appendEntry(archive, Buffer.from(errorReport(failures)), names.take('errors.txt'));
}

/** One image processed, or undefined after recording why sharp could not make it; other errors throw. */
async function make(
  deps: BatchDeps,
  options: ImageOptions,
  image: SpooledImage,
  failures: Failure[],
): Promise<Made | undefined> {
  const limits = deps.processing;
  try {
    const file = openImage(limits, image.path);
    const result = await processImage(file, options, image.type, limits, image.label);
    return { data: result.data, name: outputName(image.name, result.format) };
  } catch (err) {
    // 4xx: this image's own problem (corrupt, too many pixels, a result too large); 5xx and 499 are not.
    if (!(err instanceof TroveError) || err.status >= 499) throw err;
    failures.push({ image, error: err });
    return undefined;
  }
}

/** Every image failed: the first one's status, every problem in the message. */
function allFailed(failures: Failure[]): TroveError {
  const first = failures[0]!.error;
  if (failures.length === 1) return first;
  const all = failures.map((f) => f.error.message).join('; ');
  return new TroveError(
    first.code,
    first.status,
    `none of the ${failures.length} images could be processed: ${all}`,
  );
}

function errorReport(failures: Failure[]): string {
  const lines = failures.map(
    (f) => `${f.image.label}: ${f.error.code} (${f.error.status}): ${f.error.message}`,
  );
  return `These images could not be processed and are not in this archive:\n${lines.join('\n')}\n`;
}

/** Appends one entry and waits until the ZIP has taken it in: one processed image in memory at a time. */
function appendEntry(archive: ZipArchive, data: Buffer, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // Destroyed while the image was being made (the client left): its 'close' has been and gone.
    if (archive.destroyed) return reject(new Error('the ZIP stream closed early'));
    const done = (err?: Error) => {
      archive.off('entry', onEntry);
      archive.off('error', onError);
      archive.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onEntry = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error('the ZIP stream closed early'));
    archive.once('entry', onEntry);
    archive.once('error', onError);
    archive.once('close', onClose);
    archive.append(data, { name });
  });
}

/** Entry names made unique: `photo.webp`, then `photo-2.webp`. */
class EntryNames {
  private readonly used = new Set<string>();
  take(name: string): string {
    const dot = name.lastIndexOf('.');
    const [base, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
    let candidate = name;
    for (let n = 2; this.used.has(candidate.toLowerCase()); n++) candidate = `${base}-${n}${ext}`;
    this.used.add(candidate.toLowerCase());
    return candidate;
  }
}

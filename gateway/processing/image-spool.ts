/**
 * An image on its way in to POST /process or /batch, written to a temp file
 * under the gateway's spool directory through the size limit and the
 * magic-byte check. sharp then reads the file: libvips decodes from it
 * without ever holding the encoded bytes, so the gateway's memory stays flat
 * whatever the size of the upload (a stream piped into sharp is gathered
 * whole in memory first). Each byte written counts against the spool budget
 * (PROCESS_SPOOL_BYTES) of the request's claim.
 */
import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { ClientGoneError, PayloadTooLargeError } from '../../shared/errors.js';
import { PROCESSABLE_TYPES } from '../../shared/image-ops.js';
import { ByteLimit, pipeChain } from '../../shared/streams.js';
import { TypeSniffer } from '../upload/content-type.js';
import { SpoolQuota, type SpoolClaim } from './spool-budget.js';

export interface SpoolOptions {
  /** How errors name the image: `request body`, `b.jpg (file 2)`. */
  label: string;
  /** MAX_UPLOAD_BYTES: over it, a 413. */
  maxBytes: number;
  /** Stops the write (the client went away, another part failed). */
  signal: AbortSignal;
  /** The request's share of the spool: every byte is taken from it (503 SPOOL_FULL when none is left). */
  claim: SpoolClaim;
}

/**
 * Writes `source` to the new file `path` and answers the image's type from
 * its magic bytes. Refuses a non-image (415, naming it), an empty one and one
 * over the limit (413), and one the spool has no room for (503). `source` is
 * piped, never destroyed: on failure it is only unpiped, so a raw request
 * body stays intact and can still be answered. It settles once the file is
 * closed; the caller removes `path`, whatever the outcome.
 */
export async function spoolImage(
  source: Readable,
  path: string,
  { label, maxBytes, signal, claim }: SpoolOptions,
): Promise<string> {
  const limit = new ByteLimit(
    maxBytes,
    () =>
      new PayloadTooLargeError(`"${label}" is larger than MAX_UPLOAD_BYTES (${maxBytes} bytes)`),
  );
  const sniffer = new TypeSniffer(PROCESSABLE_TYPES, label);
  const quota = new SpoolQuota(claim);
  const file = createWriteStream(path, { flags: 'wx' });
  // The file is created by an open() on libuv's thread pool, which a failure can outrun: settling
  // before it is closed would let the caller's rm go first and the file appear after it, for ever.
  const fileClosed = new Promise<void>((resolve) => file.once('close', () => resolve()));
  const written = pipeChain(limit, quota, sniffer, file);
  const stop = () =>
    limit.destroy(signal.reason instanceof Error ? signal.reason : new ClientGoneError());
  if (signal.aborted) stop();
  signal.addEventListener('abort', stop, { once: true });
  const sourceFailed = (err: Error) => limit.destroy(err);
  source.once('error', sourceFailed);
  source.pipe(limit);
  try {
    const [type] = await Promise.all([sniffer.type, written]);
    return type;
  } catch (err) {
    source.unpipe(limit);
    // The sniffer's own verdict (415, empty file) first; else whatever stopped the stream.
    throw await sniffer.type.then(
      () => err,
      (verdict: Error) => verdict,
    );
  } finally {
    signal.removeEventListener('abort', stop);
    source.off('error', sourceFailed);
    await fileClosed;
  }
}

/**
 * The multipart side of POST /process and /batch: busboy over the request,
 * image options from form fields sent before the first file, and the files
 * handed over one at a time as busboy reaches them.
 */
import busboy from 'busboy';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { BadRequestError } from '../../shared/errors.js';

export function isMultipart(contentType: string | undefined): boolean {
  return /^multipart\/form-data/i.test(contentType ?? '');
}

export interface ImageFormSpec {
  maxFiles: number;
  /** The error for one file more than maxFiles (a 400 or a 413, depending on the endpoint). */
  tooManyFiles: () => Error;
  /** An option field; throws (400) to refuse it. */
  onField(name: string, value: string): void;
  /**
   * Takes one file (`index` from 1). Must consume `stream`: busboy reaches the
   * next part only then. `signal` fires when the request fails, so the file
   * stops too.
   */
  onFile(
    stream: Readable,
    filename: string | undefined,
    index: number,
    signal: AbortSignal,
  ): Promise<void>;
}

/**
 * Parses `source` (the request, or a size-limited view of it). Resolves once
 * every part is read and every onFile has finished; on the first problem
 * stops the files under way, waits for them to settle (so no file is still
 * being written when the request removes its temp files) and rejects with
 * that problem.
 */
export function readImageForm(
  source: Readable,
  headers: IncomingHttpHeaders,
  spec: ImageFormSpec,
  clientGone: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers,
        defParamCharset: 'utf8',
        limits: { files: spec.maxFiles, fields: 32, fieldSize: 1024, parts: spec.maxFiles + 32 },
      });
    } catch (err) {
      const message = `malformed multipart request: ${(err as Error).message}`;
      return reject(new BadRequestError(message, 'MALFORMED_MULTIPART'));
    }
    const stop = new AbortController();
    const jobs: Promise<void>[] = [];
    let files = 0;
    let failed = false;
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      source.unpipe(parser);
      stop.abort(err);
      void Promise.allSettled(jobs).then(() => reject(err));
    };
    const onGone = () => fail(clientGone.reason as Error);
    if (clientGone.aborted) return onGone();
    clientGone.addEventListener('abort', onGone, { once: true });

    source.on('error', fail);
    parser.on('field', (name, value, info) => {
      if (failed) return;
      if (name === 'file')
        return fail(new BadRequestError('the "file" field must be a file, not text', 'NO_FILE'));
      if (info.valueTruncated) return fail(new BadRequestError(`form field "${name}" is too long`));
      if (files > 0) {
        const message = `option fields must come before the file: "${name.slice(0, 40)}" came after it`;
        return fail(new BadRequestError(message, 'INVALID_OPTION'));
      }
      try {
        spec.onField(name, value);
      } catch (err) {
        fail(err as Error);
      }
    });
    parser.on('file', (name, stream, info) => {
      if (failed) return stream.resume();
      if (name !== 'file') {
        stream.resume();
        const message = `unexpected file field "${name}": send images in fields named "file"`;
        return fail(new BadRequestError(message, 'UNEXPECTED_FIELD'));
      }
      const job = spec.onFile(stream, info.filename, ++files, stop.signal);
      jobs.push(job);
      job.catch(fail);
    });
    parser.on('filesLimit', () => fail(spec.tooManyFiles()));
    parser.on('partsLimit', () => fail(new BadRequestError('too many parts in the form')));
    parser.on('fieldsLimit', () => fail(new BadRequestError('too many fields in the form')));
    parser.on('error', (err: Error) =>
      fail(new BadRequestError(`malformed multipart body: ${err.message}`, 'MALFORMED_MULTIPART')),
    );
    parser.on('close', () => {
      if (failed) return;
      Promise.all(jobs).then(() => {
        clientGone.removeEventListener('abort', onGone);
        if (!failed) resolve();
      }, fail);
    });
    source.pipe(parser);
  });
}

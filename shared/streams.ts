/**
 * Small named stream stages, composed with `pipeline()` by the gateway and the
 * storage nodes, and file writes shared by them and the worker. None of them
 * holds more than one chunk (`writeHashedFile`: up to 1 MiB of them).
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable, Transform, type Stream, type TransformCallback } from 'node:stream';
import { PayloadTooLargeError } from './errors.js';

/**
 * Fails the pipeline as soon as more than `limit` bytes have passed, before
 * passing them on; `tooLarge` words the error when the default (one file over
 * the upload limit) does not fit.
 */
export class ByteLimit extends Transform {
  private seen = 0;
  constructor(
    private readonly limit: number,
    private readonly tooLarge: () => Error = () => PayloadTooLargeError.forBytes(limit),
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) return done(this.tooLarge());
    done(null, chunk);
  }
}

/** Hashes (sha256) and counts the bytes flowing through. */
export class HashCounter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private hex: string | undefined;
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  /** The hex digest; only valid once the stream has ended. */
  digest(): string {
    this.hex ??= this.hash.digest('hex');
    return this.hex;
  }
}

/**
 * Wraps `source` in a Readable that starts pulling only when its consumer
 * first reads. undici reads a request body only after the connection is up,
 * so when a node refuses the connection `started()` is still false and the
 * source is intact: the caller can offer the same bytes to another node.
 */
export function lazyBody(source: Readable): { body: Readable; started: () => boolean } {
  let started = false;
  const body = new Readable({
    read() {
      if (!started) {
        started = true;
        source.on('data', (chunk: Buffer) => {
          if (!body.push(chunk)) source.pause();
        });
        source.once('end', () => body.push(null));
        source.once('error', (err) => body.destroy(err));
      }
      source.resume();
    },
    destroy(err, callback) {
      // Only a body that has started owns the source; an unstarted one leaves it for a retry.
      if (started && err) source.destroy(err);
      callback(err);
    },
  });
  return { body, started: () => started };
}

/**
 * Resolves with the first chunk of `stream` (null if it ends empty), leaving
 * the stream paused with that chunk consumed. Rejects if the stream fails first.
 */
export function firstChunk(stream: Readable): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      cleanup();
      stream.pause();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(
        Object.assign(new Error('stream closed before its first byte'), {
          code: 'ERR_STREAM_PREMATURE_CLOSE',
        }),
      );
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/**
 * The whole of `stream`, a body announced as `length` bytes (a small one:
 * the caller bounds it), in one buffer. Rejects if the stream fails, closes
 * before its end, or ends with another length.
 */
export function readExactly(stream: Readable, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const data = Buffer.allocUnsafe(length);
    let got = 0;
    const fail = (err: Error) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onClose);
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      if (got + chunk.length > length) {
        stream.destroy();
        return fail(bodyError(`body longer than its ${length} bytes`));
      }
      chunk.copy(data, got);
      got += chunk.length;
    };
    const onEnd = () => {
      stream.off('close', onClose);
      if (got === length) resolve(data);
      else fail(bodyError(`body ended after ${got} of its ${length} bytes`));
    };
    const onClose = () => fail(bodyError(`body cut off after ${got} of its ${length} bytes`));
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', fail);
    stream.once('close', onClose);
  });
}

function bodyError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * Pipes `streams` into each other and resolves when the last one has
 * finished (a Writable) or ended (a Readable); on the first error or early
 * close of any of them, destroys them all and rejects.
 *
 * What `stream.pipeline()` does, minus its cost on the hot path: Node 20's
 * pipeline allocates an AbortController per call and aborts it when done,
 * which builds a DOMException with a stack trace (~50-90 µs, measured under
 * load). Every small upload and download went through two or three of them.
 */
export function pipeChain(...streams: Stream[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      for (const s of streams) (s as Readable).destroy(err);
      reject(err);
    };
    const last = streams[streams.length - 1] as Readable & { writableFinished?: boolean };
    const succeed = () => {
      if (settled) return;
      settled = true;
      resolve();
    };
    streams.forEach((s, i) => {
      s.on('error', fail); // `on`, not `once`: later errors of a destroyed stage must not go unhandled
      s.once('close', () => {
        if (!settled && !isDone(s)) fail(prematureClose());
      });
      if (i > 0) (streams[i - 1] as Readable).pipe(s as unknown as NodeJS.WritableStream);
    });
    if (last.writableFinished !== undefined) last.once('finish', succeed);
    else last.once('end', succeed);
  });
}

/** A stream that closed after doing all its work: ended as a Readable, finished as a Writable. */
function isDone(s: Stream): boolean {
  const { readableEnded, writableFinished } = s as {
    readableEnded?: boolean;
    writableFinished?: boolean;
  };
  return (readableEnded ?? true) && (writableFinished ?? true);
}

function prematureClose(): Error {
  return Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/** Bytes gathered before one writev in `writeHashedFile`. */
const FILE_BATCH = 1024 * 1024;

/**
 * Writes `source` into a new file at `path` (failing if it exists), hashing
 * it on the way, and answers its sha256 and size. Chunks are gathered up to
 * 1 MiB and go down in one writev: for a photo fetched from a node that is a
 * write or two, where a stream pipeline of hasher and file stream cost the
 * worker 1.5 ms more CPU per 0.9 MB (measured). No fsync: for scratch files,
 * which a crash may lose. On failure the caller removes what was written.
 */
export async function writeHashedFile(
  source: AsyncIterable<Buffer>,
  path: string,
  signal?: AbortSignal,
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  const file = await open(path, 'wx');
  try {
    let bytes = 0;
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async () => {
      await writevAll(file, batch);
      batch = [];
      batched = 0;
    };
    for await (const chunk of source) {
      signal?.throwIfAborted();
      hash.update(chunk);
      bytes += chunk.length;
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= FILE_BATCH) await flush();
    }
    await flush();
    return { sha256: hash.digest('hex'), bytes };
  } finally {
    await file.close();
  }
}

/** writev may write less than asked (signals, huge buffers): loop until every byte is down. */
export async function writevAll(file: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers;
  while (pending.length > 0) {
    const { bytesWritten } = await file.writev(pending);
    pending = skipBytes(pending, bytesWritten);
  }
}

/** `buffers` without their first `count` bytes (what a short writev left). */
function skipBytes(buffers: Buffer[], count: number): Buffer[] {
  const rest: Buffer[] = [];
  for (const buf of buffers) {
    if (count >= buf.length) {
      count -= buf.length;
      continue;
    }
    rest.push(count > 0 ? buf.subarray(count) : buf);
    count = 0;
  }
  return rest;
}

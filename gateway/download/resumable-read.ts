/**
 * A read that outlives the replica serving it: bytes [start..end] of a blob,
 * streamed from one replica and, when that one breaks off mid-stream, from
 * the next, asked for the first byte not yet received. The caller decides
 * whether and where to resume (`next`); this module only keeps the offsets
 * and, for a whole blob, the checksum.
 *
 * For a whole blob the sha256 of everything delivered is checked against the
 * recorded one, and the last chunk is held back until it matches: bytes from
 * several replicas, or from a replica that cut its own stream because its
 * copy is corrupt, can never add up to a complete-looking wrong file. On a
 * mismatch, or when no replica is left, the stream fails instead of ending,
 * and the consumer sees a truncated body.
 *
 * The stream pulls from one replica body at a time, one chunk at a time, so
 * backpressure reaches the node and memory stays flat.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { NodeAddress } from '../../shared/config.js';
import { ChecksumMismatchError } from '../../shared/errors.js';
import type { ByteRange } from '../../shared/range.js';

/** A replica's response body, serving the blob from some offset to `range.end`. */
export interface Source {
  node: NodeAddress;
  body: Readable;
  /** The node checked every byte of `body` before sending it (node-protocol's H.verified). */
  verifiedByNode?: boolean;
}

export interface ResumableReadOptions {
  /** The bytes to deliver, as inclusive offsets into the blob. */
  range: ByteRange;
  /** The whole blob's sha256, to verify here (a whole-blob read from a node that does not check each byte before sending it). */
  sha256?: string;
  /** The replica already serving from `range.start`... */
  first: Source;
  /** ...and the first chunk already read from it (null if it had none). */
  head: Buffer | null;
  /**
   * `failed` broke off with `err` after the bytes before offset `from` had
   * been received: a replica serving [from..range.end], or undefined to give
   * up (the stream then fails with `err`).
   */
  next(from: number, failed: Source, err: Error): Promise<Source | undefined>;
}

/** A stream of `range` of the blob; it fails rather than end short or wrong. */
export function resumableRead(o: ResumableReadOptions): Readable {
  const state: ReadState = { source: o.first, closed: false };
  o.first.body.on('error', ignore); // see `iterate`
  const gen = chunks(o, state);
  return new Readable({
    read() {
      gen.next().then(
        (r) => {
          if (!this.destroyed) this.push(r.done ? null : r.value);
        },
        (err: Error) => this.destroy(err),
      );
    },
    destroy(err, callback) {
      // At once, even while the generator waits for a replica: its read then fails, and it stops.
      state.closed = true;
      state.source.body.destroy();
      gen.return(undefined).catch(() => undefined);
      callback(err);
    },
  });
}

interface ReadState {
  /** The replica being read. */
  source: Source;
  /** The stream was destroyed: no more resuming. */
  closed: boolean;
}

async function* chunks(o: ResumableReadOptions, state: ReadState): AsyncGenerator<Buffer> {
  const length = o.range.end - o.range.start + 1;
  const hash = o.sha256 === undefined ? undefined : createHash('sha256');
  let reader = iterate(state.source.body);
  let head = o.head;
  let received = 0;
  let held: Buffer | undefined;
  for (;;) {
    let chunk: Buffer;
    // Only the replica's part sits in this try; the yields stay outside it.
    try {
      const r = head ? { done: false as const, value: head } : await reader.next();
      head = null;
      if (r.done) {
        if (received === length) break;
        throw readError(`replica ended after ${received} of ${length} bytes`);
      }
      if (r.value.length > length - received)
        throw readError(`replica sent more than the ${length} bytes asked for`);
      chunk = r.value;
    } catch (err) {
      state.source.body.destroy();
      if (state.closed) throw err;
      const next = await o.next(o.range.start + received, state.source, err as Error);
      if (!next) throw err;
      next.body.on('error', ignore);
      if (state.closed) {
        next.body.destroy();
        throw err;
      }
      state.source = next;
      reader = iterate(next.body);
      continue;
    }
    if (chunk.length === 0) continue;
    received += chunk.length;
    if (!hash) {
      yield chunk;
      continue;
    }
    hash.update(chunk);
    if (held) yield held;
    held = chunk;
  }
  if (hash) {
    const actual = hash.digest('hex');
    if (actual !== o.sha256) throw new ChecksumMismatchError(o.sha256!, actual);
    if (held) yield held;
  }
}

/**
 * Chunks of `body`. The iterator listens to the body only from its first
 * `next()`, so a body gets a no-op 'error' listener as soon as it is ours:
 * an error in between must not crash the process, and is not lost (the
 * iterator reports the error of a body that has already failed).
 */
function iterate(body: Readable): AsyncIterator<Buffer> {
  return body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
}

function ignore(): void {}

function readError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_REPLICA_READ' });
}

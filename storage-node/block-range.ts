/**
 * A ranged read verified block by block: reads only the blocks the range
 * touches, hashes each, compares it with the blob's sidecar (block-sums.ts),
 * and passes on a block's bytes only once that block has verified. A 1-byte
 * range of a 1 GiB blob reads one block, not the blob. `start()` checks the
 * first block before the stream is handed out, so a node whose first block
 * fails can still answer with a status (404) instead of a cut connection.
 *
 * On a mismatch the sidecar itself is re-checked against its trailer: if it
 * is intact, the blob is corrupt (ChecksumMismatchError; the store
 * quarantines it); if not, the sidecar rotted (CorruptSumsError; the store
 * drops it, and later reads fall back to whole-blob verification until the
 * scrubber rebuilds it). Either way the stream fails, so a reader sees a
 * truncated body, never a byte that did not verify.
 */
import { createHash } from 'node:crypto';
import fsCb from 'node:fs';
import { Readable } from 'node:stream';
import { ChecksumMismatchError } from '../shared/errors.js';
import { CorruptSumsError, type SumsFile } from './block-sums.js';
import { readFully } from './file-read.js';

/** A block's bytes did not match its stored digest (and the sidecar is intact). */
export class BlockChecksumError extends ChecksumMismatchError {
  constructor(
    readonly block: number,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(expected, actual);
    this.message = `block ${block}: ${this.message}`;
  }
}

export interface BlockRangeSource {
  /** The blob's open file; closed with the stream. */
  fd: number;
  /** Its open sidecar; closed with the stream. */
  sums: SumsFile;
  size: number;
  /** Inclusive byte range, inside the blob. */
  span: { start: number; end: number };
  /** Told every byte read from the blob's file. */
  counted: (bytes: number) => void;
}

export class BlockVerifiedRange extends Readable {
  private next: number;
  private readonly last: number;
  /** The block read under way: files are closed only once it settled. */
  private inflight: Promise<unknown> | undefined;
  /** The first block, read and verified by start(). */
  private head: Buffer | undefined;

  constructor(private readonly src: BlockRangeSource) {
    super();
    const bs = src.sums.blockSize;
    this.next = Math.floor(src.span.start / bs);
    this.last = Math.floor(src.span.end / bs);
  }

  /** Reads and verifies the first block; throws what a failed block throws. Call once, before reading. */
  async start(): Promise<void> {
    const read = this.readBlock(this.next);
    this.inflight = read.catch(() => undefined);
    try {
      this.head = await read;
      this.next++;
    } finally {
      this.inflight = undefined;
    }
  }

  override _read(): void {
    if (this.head) {
      this.push(this.head);
      this.head = undefined;
      if (this.next > this.last) this.push(null);
      return;
    }
    if (this.inflight) return;
    if (this.next > this.last) {
      this.push(null);
      return;
    }
    this.inflight = this.readBlock(this.next).then(
      (bytes) => {
        this.inflight = undefined;
        if (this.destroyed) return;
        this.next++;
        this.push(bytes);
        if (this.next > this.last) this.push(null);
      },
      (err: Error) => {
        this.inflight = undefined;
        this.destroy(err);
      },
    );
  }

  /** Block `index`, verified, cut to the range. */
  private async readBlock(index: number): Promise<Buffer> {
    const { fd, sums, size, span, counted } = this.src;
    const from = index * sums.blockSize;
    const length = Math.min(sums.blockSize, size - from);
    const buf = Buffer.allocUnsafe(length);
    const got = await readFully(fd, buf, 0, length, from);
    counted(got);
    // A file cut short hashes differently from its stored block: no special case.
    const actual = createHash('sha256').update(buf.subarray(0, got)).digest();
    const expected = await sums.digest(index);
    if (!actual.equals(expected)) {
      if (!(await sums.intact()))
        throw new CorruptSumsError(
          `block sums: block ${index} mismatched and the sidecar is damaged`,
        );
      throw new BlockChecksumError(index, expected.toString('hex'), actual.toString('hex'));
    }
    return buf.subarray(
      Math.max(span.start, from) - from,
      Math.min(span.end + 1, from + length) - from,
    );
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    const { fd, sums } = this.src;
    // Release both files however the stream ends, but not under a read in
    // flight: a closed fd number may be reused by the next open.
    void Promise.resolve(this.inflight)
      .catch(() => undefined)
      .then(() => Promise.allSettled([sums.close(), new Promise((r) => fsCb.close(fd, r))]))
      .then(() => done(err));
  }
}

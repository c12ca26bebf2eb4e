/**
 * Serves a byte range of a blob while hashing the whole blob: for whole reads
 * of a large blob (which read everything anyway), and for ranges of a blob
 * without usable block sums (stored before they existed, or their sidecar
 * damaged); other ranges go through BlockVerifiedRange (block-range.ts).
 *
 * The input is the entire file from offset 0; only bytes inside the range are
 * passed on, and the last of them is held back until the whole file has been
 * hashed. If the sha256 does not match, the stream fails instead of ending,
 * so a reader never receives a corrupt blob whole: it sees a truncated body.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ChecksumMismatchError } from '../shared/errors.js';

export class VerifiedRange extends Transform {
  private readonly hash = createHash('sha256');
  private offset = 0;
  private held: Buffer | undefined;

  constructor(
    private readonly expectedSha256: string,
    private readonly range: { start: number; end: number },
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    const chunkStart = this.offset;
    this.offset += chunk.length;
    const from = Math.max(this.range.start, chunkStart);
    const to = Math.min(this.range.end + 1, this.offset);
    if (from < to) {
      if (this.held) this.push(this.held);
      this.held = chunk.subarray(from - chunkStart, to - chunkStart);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    const actual = this.hash.digest('hex');
    if (actual !== this.expectedSha256)
      return done(new ChecksumMismatchError(this.expectedSha256, actual));
    if (this.held) this.push(this.held);
    done();
  }
}

/**
 * How many bytes of /process and /batch inputs the gateway's spool holds at
 * once (PROCESS_SPOOL_BYTES). A processing slot is taken only once an input
 * is on disk, so the slots no longer bound how many bodies are being
 * received: without this, many clients could each spool up to
 * MAX_UPLOAD_BYTES (or MAX_BATCH_BYTES) at the same time and fill the disk.
 *
 * Bytes are counted as they arrive, not from Content-Length: a client that
 * declares a large body and trickles it holds only what it has sent (and
 * the minimum body rate cuts it off), so it cannot reserve the budget away
 * from the others. A request gives back everything it took when its temp
 * files are removed.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { PayloadTooLargeError, UnavailableError } from '../../shared/errors.js';

/** One request's share of the budget. */
export interface SpoolClaim {
  /** Takes `bytes` more; throws 503 SPOOL_FULL (or 413 when the request alone is over the whole budget). */
  take(bytes: number): void;
  /** Gives back all the request took; call once its files are removed. Idempotent. */
  release(): void;
}

export class SpoolBudget {
  private used = 0;

  constructor(readonly size: number) {}

  get inUse(): number {
    return this.used;
  }

  claim(): SpoolClaim {
    let held = 0;
    return {
      take: (bytes) => {
        if (held + bytes > this.size) throw this.neverFits();
        if (this.used + bytes > this.size) throw this.full();
        this.used += bytes;
        held += bytes;
      },
      release: () => {
        this.used -= held;
        held = 0;
      },
    };
  }

  private neverFits(): Error {
    return new PayloadTooLargeError(
      `the images are larger than PROCESS_SPOOL_BYTES (${this.size} bytes), the gateway's room for inputs being processed`,
    );
  }

  private full(): Error {
    return new UnavailableError(
      `the gateway's room for images being processed is full (PROCESS_SPOOL_BYTES, ${this.size} bytes); try again shortly`,
      'SPOOL_FULL',
    );
  }
}

/** A stream stage that takes every chunk's bytes from `claim` before passing it on. */
export class SpoolQuota extends Transform {
  constructor(private readonly claim: SpoolClaim) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.claim.take(chunk.length);
    } catch (err) {
      return done(err as Error);
    }
    done(null, chunk);
  }
}

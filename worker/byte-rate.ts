/**
 * A shared byte budget per second (token bucket) and a pass-through stream
 * that spends from it: every repair of a worker draws on the same budget, so
 * repair traffic as a whole stays under REPAIR_BYTES_PER_SECOND and never
 * starves user requests, however many repairs run at once.
 */
import { Transform, type TransformCallback } from 'node:stream';

export class ByteRate {
  private tokens: number;
  private last = performance.now();

  /** `bytesPerSecond` 0 means unlimited. */
  constructor(private readonly bytesPerSecond: number) {
    this.tokens = bytesPerSecond;
  }

  /** Resolves once `n` bytes may pass (a burst of up to one second's budget). */
  async take(n: number): Promise<void> {
    if (this.bytesPerSecond === 0) return;
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(
        this.bytesPerSecond,
        this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond,
      );
      this.last = now;
      // A chunk larger than the whole budget passes once the bucket is full, or it would wait forever.
      const need = Math.min(n, this.bytesPerSecond);
      if (this.tokens >= need) {
        this.tokens -= n;
        return;
      }
      const waitMs = ((need - this.tokens) / this.bytesPerSecond) * 1000;
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, waitMs)));
    }
  }

  /** A pass-through stream that waits for the budget before each chunk. */
  throttle(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc, done: TransformCallback) => {
        this.take(chunk.length).then(() => done(null, chunk), done);
      },
    });
  }
}

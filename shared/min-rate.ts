/**
 * A minimum rate for a stream that a client sends (a request body), the rule
 * of Apache's mod_reqtimeout (`RequestReadTimeout body=20,MinRate=500`): the
 * body gets `graceMs` to arrive, plus one second for every `bytesPerSecond`
 * bytes it has delivered so far. A client that sends nothing, or trickles,
 * runs out of time whatever the gap between its bytes (an idle timeout
 * between reads, nginx's `client_body_timeout`, lets a byte every 59 s keep a
 * body open for ever); a slow but steady upload of any size never does, as
 * long as it averages more than the rate, and the bytes it has sent buy it
 * slack for a later stall.
 *
 * Only time spent waiting on the client counts: while the stages after this
 * one hold it back (backpressure from a slow disk or a slow storage node) the
 * clock stops, so a client is never cut off for the server's own slowness.
 */
import { Transform, type TransformCallback } from 'node:stream';

export interface MinRateRule {
  /** Time every body gets, whatever its rate, in ms. */
  graceMs: number;
  /** Each byte received adds 1/bytesPerSecond s to the time the body may take. */
  bytesPerSecond: number;
}

/** What the body had done when it ran out of time: the words of the error. */
export interface TooSlow {
  received: number;
  /** Time spent waiting on the client, in ms. */
  waitedMs: number;
}

/**
 * Passes chunks through unchanged and fails (destroys itself with
 * `tooSlow`'s error) once the time spent waiting for the next chunk, in all,
 * passes `graceMs + received / bytesPerSecond`. The clock runs from
 * construction: create it when the body starts.
 */
export class MinRate extends Transform {
  private received = 0;
  private waitedMs = 0;
  private waitingSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    private readonly rule: MinRateRule,
    private readonly tooSlow: (state: TooSlow) => Error,
  ) {
    super();
    this.startWaiting();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.stopWaiting();
    this.received += chunk.length;
    done(null, chunk);
    // A Transform takes the next chunk at once only while its output has room; when it is full,
    // the source is held back by us, not by the client: the clock restarts in _read.
    if (this.readableLength < this.readableHighWaterMark) this.startWaiting();
  }

  override _read(size: number): void {
    this.startWaiting();
    super._read(size);
  }

  override _flush(done: TransformCallback): void {
    this.finish();
    done();
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    this.finish();
    done(err);
  }

  private finish(): void {
    this.done = true;
    this.stopWaiting();
  }

  private startWaiting(): void {
    if (this.done || this.waitingSince !== undefined) return;
    this.waitingSince = performance.now();
    const allowedMs = this.rule.graceMs + (this.received * 1000) / this.rule.bytesPerSecond;
    this.timer = setTimeout(() => this.expire(), Math.max(0, allowedMs - this.waitedMs));
    this.timer.unref();
  }

  private stopWaiting(): void {
    if (this.waitingSince === undefined) return;
    this.waitedMs += performance.now() - this.waitingSince;
    this.waitingSince = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private expire(): void {
    this.stopWaiting();
    this.destroy(this.tooSlow({ received: this.received, waitedMs: this.waitedMs }));
  }
}

import { PassThrough, Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MinRate, type MinRateRule, type TooSlow } from './min-rate.js';

class TooSlowError extends Error {
  constructor(readonly state: TooSlow) {
    super(`too slow: ${state.received} bytes`);
  }
}

/** source → MinRate → sink; `outcome` settles when the sink finishes or the stage fails. */
function paced(
  rule: MinRateRule,
  sink: Writable = new Writable({ write: (_c, _e, done) => done() }),
) {
  const source = new PassThrough();
  const stage = new MinRate(rule, (state) => new TooSlowError(state));
  source.pipe(stage).pipe(sink);
  const outcome = new Promise<TooSlow | 'finished'>((resolve) => {
    stage.once('error', (err) => resolve((err as TooSlowError).state));
    sink.once('finish', () => resolve('finished'));
  });
  return { source, stage, outcome };
}

/** Sends `count` chunks of `size` bytes, one every `everyMs`, then ends the source. */
async function trickle(source: PassThrough, count: number, size: number, everyMs: number) {
  for (let i = 0; i < count && !source.destroyed; i++) {
    source.write(Buffer.alloc(size, 1));
    await vi.advanceTimersByTimeAsync(everyMs);
  }
}

describe('MinRate', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('cuts off a body that sends nothing once the grace is over', async () => {
    const { outcome } = paced({ graceMs: 1000, bytesPerSecond: 100 });
    await vi.advanceTimersByTimeAsync(999);
    await vi.advanceTimersByTimeAsync(2);
    expect(await outcome).toEqual({ received: 0, waitedMs: expect.closeTo(1000, -1) });
  });

  it('cuts off a trickle that never pauses long, once its average falls below the rate', async () => {
    // 10 bytes every 100 ms is 100 B/s; each chunk buys 50 ms at 200 B/s and costs 100 ms.
    const { source, outcome } = paced({ graceMs: 1000, bytesPerSecond: 200 });
    await trickle(source, 100, 10, 100);
    const state = await outcome;
    expect(state).not.toBe('finished');
    // Cut when 1000 + received × 5 ms ran out: after about 20 chunks, 2 s in.
    expect((state as TooSlow).received).toBeGreaterThanOrEqual(180);
    expect((state as TooSlow).received).toBeLessThanOrEqual(220);
  });

  it('lets a steady body above the rate run for far longer than the grace', async () => {
    const { source, outcome } = paced({ graceMs: 300, bytesPerSecond: 500 });
    await trickle(source, 100, 100, 100); // 1000 B/s for 10 s
    source.end();
    await vi.advanceTimersByTimeAsync(0);
    expect(await outcome).toBe('finished');
  });

  it('lets the bytes already sent pay for a later stall', async () => {
    const { source, outcome } = paced({ graceMs: 100, bytesPerSecond: 1000 });
    source.write(Buffer.alloc(5000)); // 5 s of credit
    await vi.advanceTimersByTimeAsync(4000);
    source.end();
    await vi.advanceTimersByTimeAsync(0);
    expect(await outcome).toBe('finished');
  });

  it('does not count the time the stages after it hold the body back', async () => {
    // A sink that takes nothing until released: the stage fills, then the source is held back.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const sink = new Writable({
      highWaterMark: 1024,
      write(_chunk, _enc, done) {
        void released.then(() => done());
      },
    });
    const { source, stage, outcome } = paced({ graceMs: 500, bytesPerSecond: 1000 }, sink);
    for (let i = 0; i < 8; i++) source.write(Buffer.alloc(16 * 1024));
    source.end();
    await vi.advanceTimersByTimeAsync(10);
    expect(stage.readableLength).toBeGreaterThanOrEqual(stage.readableHighWaterMark);
    // Far past the grace and every byte's credit: only the server side was slow.
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    release();
    await vi.advanceTimersByTimeAsync(10);
    expect(await outcome).toBe('finished');
  });

  it('stops its clock when destroyed, and when the body has ended', async () => {
    const destroyed = paced({ graceMs: 100, bytesPerSecond: 100 });
    destroyed.stage.destroy();
    const ended = paced({ graceMs: 100, bytesPerSecond: 100 });
    ended.source.end(Buffer.alloc(10));
    await vi.advanceTimersByTimeAsync(0);
    expect(await ended.outcome).toBe('finished');
    const errors: unknown[] = [];
    destroyed.stage.on('error', (err) => errors.push(err));
    ended.stage.on('error', (err) => errors.push(err));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(errors).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

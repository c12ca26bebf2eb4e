import { describe, expect, it } from 'vitest';
import { ByteRate } from './byte-rate.js';

describe('ByteRate', () => {
  it('lets a burst of one second through, then paces to the rate', async () => {
    const rate = new ByteRate(100_000);
    const started = performance.now();
    await rate.take(100_000); // the initial budget
    await rate.take(50_000); // must wait ~0.5 s
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(400);
  });

  it('never blocks when unlimited', async () => {
    const rate = new ByteRate(0);
    // A paced bucket would need 100 000 s for this; unlimited never schedules a wait.
    for (let i = 0; i < 100; i++) await rate.take(1e9);
  });
});

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * Runs a fresh Node (the flags are process-wide, so never in the test's own
 * process) that churns through short-lived objects, as a busy server does, and
 * answers how many MB its young generation grew by; with `tune`, after tuneMemory().
 */
function youngGenerationGrowthMb(tune: boolean): number {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { tuneMemory } from './shared/memory-tuning.ts';
    const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    if (${tune}) tuneMemory();
    const before = young();
    const kept = [];
    for (let i = 0; i < 400000; i++) {
      const o = { i, s: 'x'.repeat(64), a: [i, i + 1, i + 2] };
      if (i % 50 === 0) kept.push(o); // some survive, as a request's state does
      if (kept.length > 2000) kept.length = 0;
    }
    console.log((young() - before) / 2 ** 20);
  `;
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { encoding: 'utf8' },
  );
  return Number(out.trim());
}

/**
 * The peak of heapUsed, in MB, while a rolling window of objects (as requests
 * in flight are) is replaced over and over: each ages into the old
 * generation before it is dropped, so the peak is what V8 lets pile up there.
 */
function oldGarbagePeakMb(tune: boolean): number {
  const script = `
    import { tuneMemory } from './shared/memory-tuning.ts';
    if (${tune}) tuneMemory();
    const window = new Array(50000);
    let peak = 0;
    for (let i = 0; i < 1500000; i++) {
      window[i % window.length] = { i, s: 'x'.repeat(200), a: new Array(8).fill(i) };
      if (i % 1000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
    console.log(peak / 2 ** 20);
  `;
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { encoding: 'utf8' },
  );
  return Number(Number(out.trim()).toFixed(1));
}

/**
 * How much a fresh Node's RSS rises, in MB, over its first 3,000 HTTP
 * requests through undici (peak, sampled every 5 ms): the requests that make
 * llhttp's WebAssembly hot; with `tune`, after tuneMemory().
 */
function undiciWarmUpGrowthMb(tune: boolean): number {
  const script = `
    import { readFileSync } from 'node:fs';
    import { createServer } from 'node:http';
    import { tuneMemory } from './shared/memory-tuning.ts';
    if (${tune}) tuneMemory();
    const { request } = await import('undici');
    const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
    const server = createServer((_req, res) => res.end('ok')).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = 'http://127.0.0.1:' + server.address().port + '/';
    const base = rss();
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, rss())), 5);
    for (let i = 0; i < 3000; i++) await (await request(url)).body.text();
    await new Promise((resolve) => setTimeout(resolve, 1500)); // background compiles finish
    clearInterval(timer);
    console.log(peak - base);
    process.exit(0);
  `;
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { encoding: 'utf8' },
  );
  return Number(Number(out.trim()).toFixed(1));
}

describe('tuneMemory', () => {
  it('stops the young generation from growing, set at run time', () => {
    // Without it the same churn grows the young generation (or the check below proves nothing).
    expect(youngGenerationGrowthMb(false)).toBeGreaterThanOrEqual(4);
    expect(youngGenerationGrowthMb(true)).toBe(0);
  }, 30_000);

  it('collects the old generation before it grows far past what it keeps', () => {
    const untuned = oldGarbagePeakMb(false);
    const tuned = oldGarbagePeakMb(true);
    // Measured: 121-123 MB without, 36 with.
    expect(tuned, `peak heap ${tuned} MB, without tuneMemory ${untuned} MB`).toBeLessThan(
      0.6 * untuned,
    );
  }, 60_000);

  it("spares undici's parser the optimizing compiler's memory", () => {
    // Measured: 38-45 MB without (TurboFan recompiling llhttp's wasm), 6.5-7.5 with.
    const untuned = undiciWarmUpGrowthMb(false);
    expect(untuned, 'without tuneMemory, the spike this guards against').toBeGreaterThan(25);
    expect(undiciWarmUpGrowthMb(true)).toBeLessThan(20);
  }, 60_000);
});

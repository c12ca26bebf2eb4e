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

describe('tuneMemory', () => {
  it('stops the young generation from growing, set at run time', () => {
    // Without it the same churn grows the young generation (or the check below proves nothing).
    expect(youngGenerationGrowthMb(false)).toBeGreaterThanOrEqual(4);
    expect(youngGenerationGrowthMb(true)).toBe(0);
  }, 30_000);
});

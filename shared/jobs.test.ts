import { describe, expect, it } from 'vitest';
import {
  fileDeleteJob,
  imageProcessJob,
  LADDER_BASE_MS,
  ladderStep,
  ladderSteps,
  topologyNames,
  workQueues,
} from './jobs.js';

describe('ladderStep', () => {
  it('is null for a job due now or in the past', () => {
    expect(ladderStep(0)).toBeNull();
    expect(ladderStep(-5000)).toBeNull();
  });

  it('never holds a job past its due time, except below the smallest step', () => {
    for (const remaining of [1, 249, 250, 999, 1000, 3599_000, 7 * 86400_000]) {
      const step = ladderStep(remaining)!;
      expect(step).toBeGreaterThan(0);
      if (remaining >= LADDER_BASE_MS) expect(step).toBeLessThanOrEqual(remaining);
      else expect(step).toBe(LADDER_BASE_MS);
    }
  });

  it('reaches any due time within the ladder in at most one hop per step', () => {
    for (const due of [1, 777, 2000, 3600_000, 7 * 86400_000 + 123]) {
      let remaining = due;
      let hops = 0;
      while (remaining > 0) {
        remaining -= ladderStep(remaining)!;
        hops++;
      }
      expect(hops).toBeLessThanOrEqual(ladderSteps.length);
      expect(remaining).toBeGreaterThan(-LADDER_BASE_MS); // late by less than the smallest step
    }
  });

  it('covers the longest TTL with its largest step', () => {
    expect(ladderSteps.at(-1)!).toBeGreaterThan(7 * 86400_000);
  });
});

describe('fileDeleteJob', () => {
  it('accepts a well-formed job and refuses anything else', () => {
    expect(fileDeleteJob.safeParse({ fileId: 'a'.repeat(22), due: 1 }).success).toBe(true);
    expect(fileDeleteJob.safeParse({ fileId: '../etc/passwd', due: 1 }).success).toBe(false);
    expect(fileDeleteJob.safeParse({ fileId: 'a'.repeat(22) }).success).toBe(false);
    expect(fileDeleteJob.safeParse('nonsense').success).toBe(false);
  });
});

describe('imageProcessJob', () => {
  it('accepts a file id and nothing else', () => {
    expect(imageProcessJob.safeParse({ fileId: 'a'.repeat(22) }).success).toBe(true);
    expect(imageProcessJob.safeParse({ fileId: 'a'.repeat(21) }).success).toBe(false);
    expect(imageProcessJob.safeParse({}).success).toBe(false);
  });

  it('has a work queue of its own, declared with the others', () => {
    const names = topologyNames('trove');
    expect(names.imageProcess).toBe('trove.images.process');
    expect(workQueues(names)).toContain('trove.images.process');
  });
});

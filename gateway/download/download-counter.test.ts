import { describe, expect, it } from 'vitest';
import { applyBatch } from './download-counter.js';

const take = { kind: 'take' as const };
const give = { kind: 'return' as const };

describe('applyBatch', () => {
  it('grants in arrival order while downloads are left, then refuses', () => {
    const { used, grants } = applyBatch(1, 3, [take, take, take]);
    expect(used).toBe(3);
    expect(grants).toEqual([
      { granted: true, left: 1 },
      { granted: true, left: 0 },
      { granted: false, left: 0 },
    ]);
  });

  it('lets a slot handed back in the batch serve a request of the same batch', () => {
    const { used, grants } = applyBatch(3, 3, [take, give]);
    expect(used).toBe(3);
    expect(grants[0]).toEqual({ granted: true, left: 0 });
  });

  it('never goes below zero', () => {
    expect(applyBatch(0, 3, [give, give]).used).toBe(0);
  });

  it('changes nothing for a used-up file', () => {
    expect(applyBatch(5, 5, [take])).toEqual({ used: 5, grants: [{ granted: false, left: 0 }] });
  });
});

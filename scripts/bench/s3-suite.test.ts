import { describe, expect, it } from 'vitest';
import { addCpu } from './procfs.js';
import { alternating } from './s3-suite.js';

describe('alternating', () => {
  it('runs each side once per pair, the first side swapped every pair', async () => {
    const ran: string[] = [];
    const results = await alternating(4, async (side) => {
      ran.push(side);
      return ran.length;
    });
    expect(ran).toEqual(['s3', 'native', 'native', 's3', 's3', 'native', 'native', 's3']);
    expect(results).toEqual({ s3: [1, 4, 5, 8], native: [2, 3, 6, 7] });
  });
});

describe('addCpu', () => {
  it('sums the totals and each process, a process in only one of them included', () => {
    const sum = addCpu(
      { serverS: 1.5, clientS: 0.5, byProcess: { gateway: 1, node1: 0.5 } },
      { serverS: 2, clientS: 0.25, byProcess: { gateway: 1.5, worker: 0.5 } },
    );
    expect(sum).toEqual({
      serverS: 3.5,
      clientS: 0.75,
      byProcess: { gateway: 2.5, node1: 0.5, worker: 0.5 },
    });
  });
});

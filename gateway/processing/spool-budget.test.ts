import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { SpoolBudget, SpoolQuota } from './spool-budget.js';

describe('SpoolBudget', () => {
  it('lets requests share the budget and refuses the bytes that would pass it with 503 SPOOL_FULL', () => {
    const budget = new SpoolBudget(100);
    const a = budget.claim();
    const b = budget.claim();
    a.take(60);
    b.take(30);
    expect(() => b.take(20)).toThrow(expect.objectContaining({ status: 503, code: 'SPOOL_FULL' }));
    expect(() => b.take(20)).toThrow(/PROCESS_SPOOL_BYTES/);
    expect(budget.inUse).toBe(90);
    a.release();
    a.release();
    expect(budget.inUse).toBe(30);
    b.take(70);
    expect(budget.inUse).toBe(100);
  });

  it('answers 413 for a request that could never fit, however empty the spool', () => {
    const budget = new SpoolBudget(100);
    const claim = budget.claim();
    claim.take(80);
    expect(() => claim.take(30)).toThrow(
      expect.objectContaining({ status: 413, code: 'PAYLOAD_TOO_LARGE' }),
    );
    claim.release();
    expect(budget.inUse).toBe(0);
  });
});

describe('SpoolQuota', () => {
  it('takes each chunk from the claim and fails the stream on the chunk over the budget', async () => {
    const budget = new SpoolBudget(40);
    const other = budget.claim();
    other.take(15);
    const claim = budget.claim();
    const passed: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        passed.push(chunk);
        done();
      },
    });
    const chunks = [Buffer.alloc(10), Buffer.alloc(10), Buffer.alloc(10)];
    await expect(
      pipeline(Readable.from(chunks), new SpoolQuota(claim), sink),
    ).rejects.toMatchObject({ code: 'SPOOL_FULL' });
    expect(Buffer.concat(passed).length).toBe(20);
    expect(budget.inUse).toBe(35);
    claim.release();
    expect(budget.inUse).toBe(15);
  });
});

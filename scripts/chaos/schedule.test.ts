import { describe, expect, it } from 'vitest';
import {
  FAULT_KINDS,
  MAX_CONCURRENT,
  WARMUP_MS,
  planFaults,
  type PlannedFault,
} from './schedule.js';
import { Random } from './random.js';

const targets = {
  nodes: ['node1', 'node2', 'node3'],
  gateways: ['gw1', 'gw2'],
  workers: ['worker1', 'worker2'],
};

const activeAt = (plan: PlannedFault[], t: number) =>
  plan.filter((f) => f.at <= t && t < f.at + Math.max(f.durationMs, 1));

describe('planFaults', () => {
  it('gives the same schedule for the same seed, another for another seed', () => {
    expect(planFaults(42, 60_000, targets)).toEqual(planFaults(42, 60_000, targets));
    expect(planFaults(42, 60_000, targets)).not.toEqual(planFaults(43, 60_000, targets));
  });

  it('brings every kind of fault into a 60 s run', () => {
    for (const seed of [1, 42, 7, 1234, 99_999]) {
      const kinds = new Set(planFaults(seed, 60_000, targets).map((f) => f.kind));
      expect([...kinds].sort(), `seed ${seed}`).toEqual([...FAULT_KINDS].sort());
    }
  });

  it('keeps to its rules: after the warmup, healed before the end, 2 at most, one per target, a gateway always up', () => {
    for (let seed = 0; seed < 200; seed++) {
      const plan = planFaults(seed, 60_000, targets);
      for (const f of plan) {
        expect(f.at).toBeGreaterThanOrEqual(WARMUP_MS);
        expect(f.at + f.durationMs).toBeLessThanOrEqual(59_000);
        const active = activeAt(plan, f.at);
        expect(active.length).toBeLessThanOrEqual(MAX_CONCURRENT);
        const held = active.flatMap((a) => (a.peer ? [a.target, a.peer] : [a.target]));
        expect(new Set(held).size, `seed ${seed} at ${f.at}`).toBe(held.length);
        expect(active.filter((a) => targets.gateways.includes(a.target)).length).toBeLessThan(2);
      }
    }
  });

  it('holds a pause longer than every lock TTL (10 s)', () => {
    const pauses = planFaults(42, 120_000, targets).filter((f) => f.kind === 'pause');
    expect(pauses.length).toBeGreaterThan(0);
    for (const p of pauses) expect(p.durationMs).toBeGreaterThan(10_000);
  });
});

describe('Random', () => {
  it('is the same sequence for the same seed and stream, and stays in range', () => {
    const a = Random.of(42, 3);
    const b = Random.of(42, 3);
    const xs = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Random.of(42, 4).next()).not.toBe(xs[0]);
    expect(Random.of(42, 1).bytes(10)).toEqual(Random.of(42, 1).bytes(10));
  });
});

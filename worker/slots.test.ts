import { describe, expect, it } from 'vitest';
import { Slots } from './slots.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('Slots', () => {
  it('never runs more tasks at once than it has slots, and runs them all', async () => {
    const slots = new Slots(2);
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        slots.run(async () => {
          running++;
          peak = Math.max(peak, running);
          await tick();
          running--;
          done.push(i);
        }),
      ),
    );
    expect(peak).toBe(2);
    expect(done.sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('frees the slot of a task that failed', async () => {
    const slots = new Slots(1);
    await expect(slots.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await slots.run(async () => 'next')).toBe('next');
  });

  it('starts waiting tasks in arrival order', async () => {
    const slots = new Slots(1);
    const order: string[] = [];
    await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        slots.run(async () => {
          order.push(name);
          await tick();
        }),
      ),
    );
    expect(order).toEqual(['a', 'b', 'c']);
  });
});

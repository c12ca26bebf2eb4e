import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../../shared/errors.js';
import { ProcessSlots } from './process-slots.js';

describe('ProcessSlots', () => {
  it('hands out at most `size` slots and refuses the next without queueing', () => {
    const slots = new ProcessSlots(2);
    const a = slots.acquire();
    slots.acquire();
    expect(slots.tryAcquire()).toBeUndefined();
    expect(() => slots.acquire()).toThrow(UnavailableError);
    a();
    expect(slots.inUse).toBe(1);
    expect(slots.tryAcquire()).toBeTypeOf('function');
  });

  it('counts a release once however often it is called', () => {
    const slots = new ProcessSlots(1);
    const release = slots.acquire();
    release();
    release();
    expect(slots.inUse).toBe(0);
    slots.acquire();
    expect(slots.tryAcquire()).toBeUndefined();
  });

  it('names the setting in its 503', () => {
    const slots = new ProcessSlots(1);
    slots.acquire();
    expect(() => slots.acquire()).toThrow(/PROCESS_CONCURRENCY/);
    try {
      slots.acquire();
    } catch (err) {
      expect(err).toMatchObject({ status: 503, code: 'PROCESSING_BUSY' });
    }
  });
});

import { describe, expect, it } from 'vitest';
import {
  currentRequestId,
  isValidRequestId,
  requestIdFrom,
  runWithRequestId,
} from './request-context.js';

describe('request ids from the outside', () => {
  it('keeps an acceptable incoming id', () => {
    for (const id of ['a', 'upload-42', 'f3b2c1d0.e:9_A', 'x'.repeat(128)])
      expect(requestIdFrom(id)).toBe(id);
  });

  it('replaces a missing, empty, too long or odd one with a new uuid', () => {
    for (const bad of [
      undefined,
      '',
      'x'.repeat(129),
      'has space',
      'semi;colon',
      'ü',
      'a\nb',
      42,
    ]) {
      expect(isValidRequestId(bad)).toBe(false);
      const id = requestIdFrom(bad);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
    expect(requestIdFrom(undefined)).not.toBe(requestIdFrom(undefined));
  });
});

describe('the current request id', () => {
  it('is undefined outside of any request', () => {
    expect(currentRequestId()).toBeUndefined();
  });

  it('follows awaits and timers, and ends with the run', async () => {
    const seen = await runWithRequestId('outer', async () => {
      await new Promise((r) => setTimeout(r, 5));
      const afterTimer = currentRequestId();
      const inCallback = await new Promise<string | undefined>((r) =>
        setImmediate(() => r(currentRequestId())),
      );
      return [afterTimer, inCallback];
    });
    expect(seen).toEqual(['outer', 'outer']);
    expect(currentRequestId()).toBeUndefined();
  });

  it('nests: the inner id wins inside, the outer one is back after', () => {
    runWithRequestId('outer', () => {
      runWithRequestId('inner', () => expect(currentRequestId()).toBe('inner'));
      expect(currentRequestId()).toBe('outer');
    });
  });

  it('keeps concurrent requests apart', async () => {
    const one = (id: string, ms: number) =>
      runWithRequestId(id, async () => {
        await new Promise((r) => setTimeout(r, ms));
        return currentRequestId();
      });
    expect(await Promise.all([one('a', 20), one('b', 1), one('c', 10)])).toEqual(['a', 'b', 'c']);
  });
});

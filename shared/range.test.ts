import { describe, expect, it } from 'vitest';
import { RangeNotSatisfiableError } from './errors.js';
import { contentRange, ifRangeHolds, parseRange } from './range.js';

describe('parseRange', () => {
  it('serves whole bodies when there is no usable header', () => {
    expect(parseRange(undefined, 100)).toBeUndefined();
    expect(parseRange('items=0-5', 100)).toBeUndefined();
    expect(parseRange('bytes=0-5,10-20', 100)).toBeUndefined();
    expect(parseRange('bytes=-', 100)).toBeUndefined();
    expect(parseRange('bytes=9-3', 100)).toBeUndefined();
  });

  it('reads closed, open and suffix ranges', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=90-500', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-500', 100)).toEqual({ start: 0, end: 99 });
  });

  it('refuses ranges that hold no byte', () => {
    expect(() => parseRange('bytes=100-', 100)).toThrow(RangeNotSatisfiableError);
    expect(() => parseRange('bytes=-0', 100)).toThrow(RangeNotSatisfiableError);
    expect(() => parseRange('bytes=0-', 0)).toThrow(RangeNotSatisfiableError);
  });

  it('formats Content-Range', () => {
    expect(contentRange({ start: 0, end: 9 }, 100)).toBe('bytes 0-9/100');
  });

  it('applies a Range under If-Range only when it names the current ETag, strongly', () => {
    const etag = `"${'a'.repeat(64)}"`;
    expect(ifRangeHolds(undefined, etag)).toBe(true);
    expect(ifRangeHolds(etag, etag)).toBe(true);
    expect(ifRangeHolds(` ${etag} `, etag)).toBe(true);
    expect(ifRangeHolds(`W/${etag}`, etag)).toBe(false);
    expect(ifRangeHolds(`"${'b'.repeat(64)}"`, etag)).toBe(false);
    expect(ifRangeHolds('Wed, 21 Oct 2015 07:28:00 GMT', etag)).toBe(false);
  });

  it('applies a Range under an If-Range date only when it is the Last-Modified sent, exactly', () => {
    const etag = '"abc"';
    const sent = 'Wed, 21 Oct 2015 07:28:00 GMT';
    expect(ifRangeHolds(sent, etag, sent)).toBe(true);
    expect(ifRangeHolds(etag, etag, sent)).toBe(true);
    expect(ifRangeHolds('Wed, 21 Oct 2015 07:28:01 GMT', etag, sent)).toBe(false);
    expect(ifRangeHolds('"other"', etag, sent)).toBe(false);
  });
});

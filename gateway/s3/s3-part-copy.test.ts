import { describe, expect, it } from 'vitest';
import { parseCopySourceRange } from './s3-part-copy.js';

const invalid = (argumentValue: string) =>
  expect.objectContaining({
    code: 'InvalidArgument',
    details: expect.objectContaining({
      ArgumentName: 'x-amz-copy-source-range',
      ArgumentValue: argumentValue,
    }),
  });

describe('parseCopySourceRange', () => {
  it('no header: the whole object', () => {
    expect(parseCopySourceRange(undefined, 100)).toBeUndefined();
  });

  it('reads bytes=first-last, inclusive, up to the last byte', () => {
    expect(parseCopySourceRange('bytes=0-0', 100)).toEqual({ start: 0, end: 0 });
    expect(parseCopySourceRange('bytes=10-99', 100)).toEqual({ start: 10, end: 99 });
    expect(parseCopySourceRange('bytes=0-6291455', 12 * 1024 * 1024)).toEqual({
      start: 0,
      end: 6291455,
    });
  });

  it("refuses what a GET's Range would take: open ends, suffixes, several ranges", () => {
    for (const bad of ['bytes=5-', 'bytes=-5', 'bytes=0-1,3-4', 'bytes=', '0-5', 'bytes=a-b'])
      expect(() => parseCopySourceRange(bad, 100), bad).toThrow(invalid(bad));
  });

  it('refuses a range backwards or past the end of the object', () => {
    for (const bad of ['bytes=5-2', 'bytes=0-100', 'bytes=100-100', 'bytes=0-99999999999'])
      expect(() => parseCopySourceRange(bad, 100), bad).toThrow(invalid(bad));
    expect(() => parseCopySourceRange('bytes=0-0', 0)).toThrow(invalid('bytes=0-0'));
  });
});

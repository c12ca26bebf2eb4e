import { describe, expect, it } from 'vitest';
import {
  afterPrefix,
  bucketNameProblem,
  compareKeys,
  isValidBucketName,
  isValidObjectKey,
} from './s3-names.js';

describe('bucket names', () => {
  it('accepts what S3 accepts', () => {
    for (const name of [
      'abc',
      'my-bucket',
      'my.bucket.2024',
      '1bucket',
      'a'.repeat(63),
      '10.0.0',
    ]) {
      expect(bucketNameProblem(name), name).toBeUndefined();
    }
  });

  it('refuses the wrong length, case, characters, ends, dots and IP addresses', () => {
    const refused = [
      'ab',
      'a'.repeat(64),
      'MyBucket',
      'my_bucket',
      'my bucket',
      '-bucket',
      'bucket-',
      '.bucket',
      'bucket.',
      'my..bucket',
      'my.-bucket',
      'my-.bucket',
      '192.168.1.20',
      'été',
      '',
    ];
    for (const name of refused) expect(isValidBucketName(name), name).toBe(false);
    expect(bucketNameProblem('192.168.1.20')).toMatch(/IP address/);
  });
});

describe('object keys', () => {
  it('takes 1 to 1024 bytes of well-formed UTF-8 without NUL', () => {
    expect(isValidObjectKey('photos/2024/a.jpg')).toBe(true);
    expect(isValidObjectKey('中'.repeat(341))).toBe(true); // 1023 bytes
    expect(isValidObjectKey('中'.repeat(342))).toBe(false); // 1026 bytes
    expect(isValidObjectKey('a'.repeat(1024))).toBe(true);
    expect(isValidObjectKey('a'.repeat(1025))).toBe(false);
    expect(isValidObjectKey('')).toBe(false);
    expect(isValidObjectKey('a\0b')).toBe(false);
    expect(isValidObjectKey('\ud83d')).toBe(false);
    expect(isValidObjectKey('😀')).toBe(true);
  });
});

describe('afterPrefix', () => {
  it("is the prefix with its last code point incremented: 'photos/' → 'photos0'", () => {
    expect(afterPrefix('photos/')).toBe('photos0');
    expect(afterPrefix('a')).toBe('b');
    expect(afterPrefix('é')).toBe('ê');
    // C2 BF: the last byte's successor C0 is not UTF-8; the next code point is C3 80.
    expect(afterPrefix('\u00bf')).toBe('\u00c0');
    expect(afterPrefix('\ud7ff')).toBe('\ue000');
    expect(afterPrefix('\uffff')).toBe('\u{10000}');
    expect(afterPrefix('a\u{10ffff}')).toBe('b');
  });

  it('has no bound for an empty prefix or one of only U+10FFFF', () => {
    expect(afterPrefix('')).toBeUndefined();
    expect(afterPrefix('\u{10ffff}\u{10ffff}')).toBeUndefined();
  });

  it('is above every key under the prefix and below every key after them, in byte order', () => {
    const prefixes = ['photos/', 'a', 'é', '\u00bf', '\uffff', 'z\u{10ffff}', '中'];
    const tails = ['', 'a', '\u0000', '\u007f', '\u00ff', '\uffff', '\u{10000}', '\u{10ffff}x'];
    for (const p of prefixes) {
      const bound = afterPrefix(p)!;
      for (const t of tails) expect(compareKeys(p + t, bound), `${p}+${t}`).toBeLessThan(0);
      // Nothing lies between: the bound itself is the first key past the prefix.
      expect(bound.startsWith(p)).toBe(false);
    }
  });

  it('orders keys by UTF-8 bytes, not by UTF-16 units', () => {
    const keys = ['z', '\u{10000}', 'a', '\uffff', 'B', 'é', '~', '中'];
    expect([...keys].sort(compareKeys)).toEqual([
      'B',
      'a',
      'z',
      '~',
      'é',
      '中',
      '\uffff',
      '\u{10000}',
    ]);
    // JavaScript's own sort puts U+10000 (a surrogate pair) before U+FFFF.
    expect([...keys].sort().indexOf('\u{10000}')).toBeLessThan([...keys].sort().indexOf('\uffff'));
  });
});

import { describe, expect, it } from 'vitest';
import { afterPrefix, compareKeys } from './s3-names.js';

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('compareKeys', () => {
  it('orders a character above U+FFFF after U+E000..U+FFFF, as UTF-8 does', () => {
    const astral = '\u{1F600}';
    const privateUse = '\uE000';
    expect(astral < privateUse).toBe(true); // UTF-16 code units disagree with the bytes
    expect(compareKeys(astral, privateUse)).toBeGreaterThan(0);
    expect(compareKeys('a\uFFFF', 'a\u{10000}')).toBeLessThan(0);
    expect(compareKeys('abc', 'abc')).toBe(0);
    expect(compareKeys('ab', 'abc')).toBeLessThan(0);
  });

  it('agrees with Buffer.compare on random strings', () => {
    const alphabet = [
      'a',
      'z',
      '/',
      '\u007f',
      '\u0080',
      'é',
      '\uD7FF',
      '\uE000',
      '\uFFFF',
      '\u{10000}',
      '\u{1F600}',
      '\u{10FFFF}',
    ];
    const random = () =>
      Array.from(
        { length: Math.floor(Math.random() * 4) },
        () => alphabet[Math.floor(Math.random() * alphabet.length)],
      ).join('');
    for (let i = 0; i < 5000; i++) {
      const a = random();
      const b = random();
      expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(byteOrder(a, b)));
    }
  });
});

describe('afterPrefix', () => {
  it('increments the last character', () => {
    expect(afterPrefix('a/')).toBe('a0');
    expect(afterPrefix('photos/2024-')).toBe('photos/2024.');
    expect(afterPrefix('é')).toBe('ê');
  });

  it('keeps UTF-8 valid where incrementing the last byte would not', () => {
    // U+007F + 1 byte would be 0x80, a lone continuation byte.
    expect(afterPrefix('a\u007f')).toBe('a\u0080');
    expect(afterPrefix('a\uFFFF')).toBe('a\u{10000}');
    expect(afterPrefix('a\uD7FF')).toBe('a\uE000');
    expect(afterPrefix('a\u{1F600}')).toBe('a\u{1F601}');
  });

  it('carries past U+10FFFF, and has no successor for an empty or all-U+10FFFF prefix', () => {
    expect(afterPrefix('a\u{10FFFF}\u{10FFFF}')).toBe('b');
    expect(afterPrefix('')).toBeUndefined();
    expect(afterPrefix('\u{10FFFF}')).toBeUndefined();
  });

  it('is above every key with the prefix and at most any key without it', () => {
    const prefixes = ['a/', 'x\u007f', 'é', 'q\uFFFF', 'q\u{1F600}', 'z\u{10FFFF}'];
    const tails = ['', '\u0000', 'zzz', '\uFFFF', '\u{10FFFF}\u{10FFFF}'];
    const others = [
      'a0',
      'a/',
      'b',
      'x\u0080',
      'ê',
      'q\u{10000}',
      'q\u{1F601}',
      '{',
      'z\u{10FFFF}',
    ];
    for (const prefix of prefixes) {
      const next = afterPrefix(prefix)!;
      for (const tail of tails) expect(byteOrder(prefix + tail, next)).toBeLessThan(0);
      for (const other of others.filter((key) => !key.startsWith(prefix))) {
        if (byteOrder(other, prefix) > 0) expect(byteOrder(other, next)).toBeGreaterThanOrEqual(0);
      }
      expect(Buffer.from(next).toString()).toBe(next); // valid UTF-8 round trip
    }
  });
});

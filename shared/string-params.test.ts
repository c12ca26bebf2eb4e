import { describe, expect, it } from 'vitest';
import { choiceParam, integerParam } from './string-params.js';

describe('integerParam', () => {
  const width = integerParam(1, 8192);

  it('reads plain digits, spaces around them allowed', () => {
    expect(width.parse('320')).toBe(320);
    expect(width.parse(' 8192 ')).toBe(8192);
  });

  it.each(['0', '8193', '-1', '1.5', '1e3', '0x10', '', 'wide', '1234567890'])(
    'refuses %j',
    (raw) => {
      expect(width.safeParse(raw).success).toBe(false);
    },
  );

  it('honours the digit limit before the bounds', () => {
    expect(integerParam(0, Number.MAX_SAFE_INTEGER, 3).safeParse('1000').success).toBe(false);
  });
});

describe('choiceParam', () => {
  const format = choiceParam(['jpeg', 'png'], { jpg: 'jpeg' });

  it('reads a value case-insensitively, and its aliases', () => {
    expect(format.parse(' PNG ')).toBe('png');
    expect(format.parse('jpg')).toBe('jpeg');
  });

  it.each(['gif', '', 'toString', '__proto__'])('refuses %j', (raw) => {
    expect(format.safeParse(raw).success).toBe(false);
  });
});

/**
 * The order of S3 keys: their UTF-8 bytes. JS's `<` compares UTF-16 code
 * units, which puts a character above U+FFFF (a surrogate pair, 0xD800..)
 * before one in U+E000..U+FFFF, where UTF-8 puts it after. Listings, markers
 * and continuation tokens must all agree with the store's byte order.
 */

/** Compares two keys in UTF-8 byte order (which is code point order): <0, 0 or >0. */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/**
 * A code unit's rank in code point order at the first difference of two
 * well-formed strings: surrogates (a code point above U+FFFF) rank above all
 * of U+E000..U+FFFF.
 */
function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

const MAX_CODE_POINT = 0x10ffff;

/**
 * The least string greater than every string that starts with `prefix`, in
 * UTF-8 byte order: the prefix with its last code point incremented (trailing
 * U+10FFFF dropped, surrogates skipped). Incrementing the last UTF-8 byte
 * instead could make invalid UTF-8 (0x7F + 1 is a lone continuation byte).
 * Undefined when nothing is greater (an empty prefix, or all U+10FFFF).
 * It may itself be a key: scan from it inclusively.
 */
export function afterPrefix(prefix: string): string | undefined {
  const points = Array.from(prefix);
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < MAX_CODE_POINT) {
      // U+D7FF is followed by U+E000 in UTF-8: surrogates are not characters.
      const next = last === 0xd7ff ? 0xe000 : last + 1;
      return points.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
}

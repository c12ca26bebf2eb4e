/**
 * S3's names, as pure functions: which bucket names and object keys are
 * valid, and the key bound a listing uses to skip every key under a prefix.
 * Keys are ordered as S3 lists them, by their UTF-8 bytes; for well-formed
 * strings that is code point order (not JavaScript's UTF-16 code unit order,
 * which puts U+10000 and above before U+E000..U+FFFF).
 */

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * Why `name` is not a valid bucket name (S3's rules for new buckets), or
 * undefined when it is: 3-63 characters of lowercase letters, digits, `.`
 * and `-`, starting and ending with a letter or digit, no `..`, not shaped
 * like an IPv4 address. The dot rules keep a name usable as a DNS label
 * in virtual-hosted-style requests.
 */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return 'must be 3 to 63 characters long';
  if (!BUCKET_NAME.test(name))
    return 'may hold only lowercase letters, digits, dots and hyphens, and must start and end with a letter or digit';
  if (name.includes('..')) return 'must not contain two adjacent dots';
  if (name.includes('.-') || name.includes('-.')) return 'must not have a dot next to a hyphen';
  if (IPV4.test(name)) return 'must not be formatted as an IP address';
  return undefined;
}

export function isValidBucketName(name: string): boolean {
  return bucketNameProblem(name) === undefined;
}

/** In `u` mode a paired surrogate is one code point: only a lone one matches. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** S3's limit on a key: 1024 bytes of UTF-8. */
export const MAX_KEY_BYTES = 1024;

/**
 * Whether `key` can name an object: 1-1024 bytes of UTF-8, well-formed (no
 * lone surrogate, which has no UTF-8 form and so no place in byte order),
 * and without U+0000, which PostgreSQL's TEXT cannot hold.
 */
export function isValidObjectKey(key: string): boolean {
  if (key.length === 0 || LONE_SURROGATE.test(key) || key.includes('\0')) return false;
  return Buffer.byteLength(key, 'utf8') <= MAX_KEY_BYTES;
}

const MAX_CODE_POINT = 0x10ffff;

/**
 * The smallest string greater, in UTF-8 byte order, than every string that
 * starts with `prefix`; undefined when there is none (an empty prefix, or
 * one made only of U+10FFFF). A listing that resumes at keys `>=` it has
 * skipped everything under the prefix: `afterPrefix('photos/')` is
 * `'photos0'`. The last code point is incremented, not the last byte or
 * UTF-16 unit: a byte past a continuation byte is not UTF-8, and a database
 * will not take it as text ('\u00bf' becomes '\u00c0', not C2 C0).
 * Surrogates are skipped (U+D7FF → U+E000); a trailing U+10FFFF has no
 * successor, so it is dropped and the code point before it incremented.
 */
export function afterPrefix(prefix: string): string | undefined {
  const points = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (points.length > 0) {
    const last = points.pop()!;
    if (last < MAX_CODE_POINT) {
      points.push(last === 0xd7ff ? 0xe000 : last + 1);
      return String.fromCodePoint(...points);
    }
  }
  return undefined;
}

/**
 * Compares two keys as S3 orders them, by their UTF-8 bytes (which is code
 * point order), without encoding them: JS's `<` compares UTF-16 code units,
 * which puts a character above U+FFFF (a surrogate pair) before one in
 * U+E000..U+FFFF, where UTF-8 puts it after. Listings, markers and
 * continuation tokens must all agree with the stores' byte order.
 */
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

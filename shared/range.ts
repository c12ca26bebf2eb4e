/**
 * HTTP Range (RFC 9110 §14) for one byte range. Multiple ranges are answered
 * with the whole representation, which the RFC allows.
 */
import { RangeNotSatisfiableError } from './errors.js';

export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The range a `Range` header asks of a `size`-byte body: undefined to serve it
 * whole (no header, another unit, several ranges, or a malformed header, all of
 * which a server may ignore); throws RangeNotSatisfiableError when no byte of
 * it exists.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) throw new RangeNotSatisfiableError(size);
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) throw new RangeNotSatisfiableError(size);
  return { start, end };
}

/**
 * Whether a `Range` applies under `If-Range` (RFC 9110 §13.1.5): when there is
 * no If-Range, or it is `etag` (strong comparison), or the `lastModified`
 * date sent with the representation, exactly. A weak tag or another date
 * never is: the client's copy may be of other bytes, so it gets the whole
 * representation, 200, instead of a part.
 */
export function ifRangeHolds(
  ifRange: string | undefined,
  etag: string,
  lastModified?: string,
): boolean {
  if (ifRange === undefined) return true;
  const validator = ifRange.trim();
  return validator === etag || (lastModified !== undefined && validator === lastModified);
}

export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

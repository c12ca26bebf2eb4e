/**
 * The SigV4 canonical request, as S3 builds it from a request as received.
 *
 * Strings here are byte strings, one char per byte, as node:http gives the
 * request line and headers: the canonical request is hashed as those bytes,
 * so a header the client signed as raw bytes (UTF-8 or not) hashes the same.
 */
import { hash } from 'node:crypto';

/** A request as received, before any decoding. */
export interface RawRequest {
  method: string;
  /** The path exactly as sent, still percent-encoded as the client encoded it. */
  rawPath: string;
  /** The query string as sent, without the '?'. */
  rawQuery: string;
  /** Lower-case names; repeated headers joined with ', ', as node:http joins them. */
  headers: Readonly<Record<string, string | undefined>>;
}

/** One-shot (no Hash object per call: every signed request hashes its canonical request). */
export const sha256Hex = (bytes: string): string => hash('sha256', Buffer.from(bytes, 'latin1'));

/** RFC 3986 unreserved characters: the only bytes SigV4 leaves unencoded. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

function uriEncode(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    out += UNRESERVED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The bytes of one query name or value. '+' is a space, as in every form
 * encoding (and as S3 reads its own query parameters); a literal plus comes
 * as %2B, which is how every SDK sends it. A '%' not followed by two hex
 * digits stands for itself.
 */
export function decodeQueryComponent(raw: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const char = raw[i]!;
    const hex = char === '%' ? raw.slice(i + 1, i + 3) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(char === '+' ? 0x20 : char.charCodeAt(0) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The query's name=value pairs, raw as sent (a name without '=' has the value ''). */
export function rawQueryPairs(rawQuery: string): [name: string, value: string][] {
  return rawQuery
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq === -1 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
    });
}

/**
 * The canonical query string: every pair re-encoded from its decoded bytes
 * (so `%2f`, `%2F` and `/` agree), sorted by name then value, the pair named
 * `exclude` (a presigned URL's X-Amz-Signature) left out.
 */
export function canonicalQuery(rawQuery: string, exclude?: string): string {
  if (rawQuery === '') return '';
  return rawQueryPairs(rawQuery)
    .map(([name, value]) => [
      uriEncode(decodeQueryComponent(name)),
      uriEncode(decodeQueryComponent(value)),
    ])
    .filter(([name]) => name !== exclude)
    .sort(([n1, v1], [n2, v2]) => compare(n1!, n2!) || compare(v1!, v2!))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A header value as signed: trimmed, each run of spaces and tabs (and folded line breaks) one space. */
const canonicalHeaderValue = (value: string): string =>
  /[\t\r\n]| {2}/.test(value) ? value.replace(/[ \t\r\n]+/g, ' ').trim() : value.trim();

/**
 * The canonical request. The URI is the raw path as sent: S3, unlike other
 * AWS services, neither normalises it nor encodes it a second time (the SDK's
 * S3 signer runs with `uriEscapePath: false` over the path it encoded once).
 * A signed header absent from the request signs as empty, so its signature
 * fails rather than the request being refused for it.
 */
export function canonicalRequest(
  request: RawRequest,
  signedHeaders: readonly string[],
  payloadHash: string,
  excludeQuery?: string,
): string {
  const headerLines = signedHeaders.map(
    (name) => `${name}:${canonicalHeaderValue(request.headers[name] ?? '')}\n`,
  );
  return [
    request.method,
    request.rawPath || '/',
    canonicalQuery(request.rawQuery, excludeQuery),
    headerLines.join(''),
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
}

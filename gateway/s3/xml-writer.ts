/**
 * The few primitives S3's XML responses are written with: escaped text,
 * elements, a namespaced document. Element names are always literals of
 * ours; only text is escaped, always, in `leaf`.
 */

/** The namespace of S3's response documents. */
export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

const NAMED: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/**
 * Escapes text for element content. Control characters are written as
 * character references, as S3 does: a parser would turn a raw CR into LF,
 * and most refuse a raw U+0001 (whoever needs such keys should ask for
 * EncodingType=url). A lone surrogate cannot be written as UTF-8: U+FFFD.
 */
export function escapeXml(text: string): string {
  return wellFormed(text).replace(
    /[&<>"'\u0000-\u001F\uFFFE\uFFFF]/g,
    (c) => NAMED[c] ?? `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`,
  );
}

/** A text element, or nothing when the value is undefined (an optional field left out). */
export function leaf(name: string, value: string | number | boolean | undefined): string {
  if (value === undefined) return '';
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

/** An element of elements; children are already-written XML. */
export function node(name: string, ...children: string[]): string {
  return `<${name}>${children.join('')}</${name}>`;
}

/** A whole response document, its root in S3's namespace. */
export function s3Document(root: string, ...children: string[]): string {
  return `${XML_DECLARATION}<${root} xmlns="${S3_XMLNS}">${children.join('')}</${root}>`;
}

/** A whole document whose root carries no namespace (S3's `<Error>`). */
export function plainDocument(root: string, ...children: string[]): string {
  return `${XML_DECLARATION}${node(root, ...children)}`;
}

/** S3's timestamps: ISO 8601 in UTC with milliseconds. */
export function isoTime(date: Date): string {
  return date.toISOString();
}

/** An ETag as S3 writes it, in double quotes (whether stored with them or not). */
export function quoteEtag(etag: string): string {
  return etag.startsWith('"') && etag.endsWith('"') && etag.length >= 2 ? etag : `"${etag}"`;
}

/**
 * S3's `EncodingType=url` encoding of keys and prefixes: percent-encoded
 * UTF-8 with `/` and `*` left as they are, `~` encoded and a space as `+`
 * (clients decode it as a form value, so a plus must become %2B).
 */
export function s3UrlEncode(text: string): string {
  return encodeURIComponent(wellFormed(text))
    .replace(/%20/g, '+')
    .replace(/%2F/g, '/')
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The text with each lone surrogate replaced by U+FFFD: it has no UTF-8 form. */
function wellFormed(text: string): string {
  return text.replace(
    /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    '\uFFFD',
  );
}

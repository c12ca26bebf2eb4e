/**
 * The XML request bodies of the S3 API: CompleteMultipartUpload, Delete
 * (DeleteObjects) and CreateBucketConfiguration. Parsing is safe for
 * hostile input: a DOCTYPE is refused (no entity can be defined, so none
 * expands), only XML's five entities and character references are decoded,
 * nesting is bounded by the parser and size by the caller, with the limits
 * below.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { MAX_PART_NUMBER } from './s3-request.js';
import { S3Error } from './s3-errors.js';

const MiB = 1024 * 1024;

/**
 * The largest CompleteMultipartUpload body read: 10 000 parts at ~170 bytes
 * each with a SHA-256 checksum element (SDKs now send a checksum per part).
 */
export const COMPLETE_MULTIPART_BODY_LIMIT = 2 * MiB;
/** The largest Delete body read: 1000 keys of up to 1024 bytes, with room for escaping. */
export const DELETE_OBJECTS_BODY_LIMIT = 2 * MiB;
/** The largest CreateBucketConfiguration body read: it holds one short string. */
export const CREATE_BUCKET_BODY_LIMIT = 64 * 1024;

/** S3's most keys in one DeleteObjects. */
export const MAX_DELETE_KEYS = 1000;

/** One part of a CompleteMultipartUpload, its ETag without quotes. */
export interface CompletedPart {
  partNumber: number;
  etag: string;
}

/** The objects of a DeleteObjects request. */
export interface DeleteRequest {
  /** Answer only the failures. */
  quiet: boolean;
  objects: { key: string; versionId?: string }[];
}

/** The parts listed in a CompleteMultipartUpload body, in ascending order. */
export function parseCompleteMultipartUpload(body: string | Uint8Array): CompletedPart[] {
  const root = parseDocument(body, 'CompleteMultipartUpload', COMPLETE_MULTIPART_BODY_LIMIT);
  const parts = childrenOf(root, 'Part').map(completedPart);
  if (parts.length === 0) throw malformed();
  parts.reduce((previous, part) => {
    if (part.partNumber <= previous) {
      throw new S3Error(
        'InvalidPartOrder',
        'The list of parts was not in ascending order. The parts list must be specified in order by part number.',
      );
    }
    return part.partNumber;
  }, 0);
  return parts;
}

function completedPart(part: unknown): CompletedPart {
  const number = requiredText(part, 'PartNumber').trim();
  const etag = requiredText(part, 'ETag').trim();
  if (!/^\d{1,9}$/.test(number) || etag === '') throw malformed();
  const partNumber = Number(number);
  if (partNumber < 1 || partNumber > MAX_PART_NUMBER) {
    throw new S3Error(
      'InvalidArgument',
      `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
    );
  }
  return { partNumber, etag: etag.replace(/^"(.*)"$/, '$1') };
}

/** The objects named in a Delete body: 1 to 1000 of them. */
export function parseDeleteObjects(body: string | Uint8Array): DeleteRequest {
  const root = parseDocument(body, 'Delete', DELETE_OBJECTS_BODY_LIMIT);
  const objects = childrenOf(root, 'Object').map((object) => {
    // A key is not trimmed: spaces at its ends are part of it.
    const key = requiredText(object, 'Key');
    const versionId = optionalText(object, 'VersionId');
    return versionId === undefined ? { key } : { key, versionId };
  });
  if (objects.length === 0 || objects.length > MAX_DELETE_KEYS) throw malformed();
  const quiet = optionalText(root, 'Quiet')?.trim().toLowerCase() ?? 'false';
  if (quiet !== 'true' && quiet !== 'false') throw malformed();
  return { quiet: quiet === 'true', objects };
}

/** The region asked for by a CreateBucket body; an empty body asks for none. */
export function parseCreateBucketConfiguration(body: string | Uint8Array): {
  locationConstraint?: string;
} {
  if (decodeUtf8(body, CREATE_BUCKET_BODY_LIMIT).trim() === '') return {};
  const root = parseDocument(body, 'CreateBucketConfiguration', CREATE_BUCKET_BODY_LIMIT);
  const locationConstraint = optionalText(root, 'LocationConstraint')?.trim();
  return locationConstraint ? { locationConstraint } : {};
}

const parser = new XMLParser({
  // DOCTYPEs are refused before parsing; entities are decoded by decodeText.
  processEntities: false,
  htmlEntities: false,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  removeNSPrefix: true,
  // Values stay strings (an ETag or key of digits is not a number) with their spaces.
  parseTagValue: false,
  trimValues: false,
  cdataPropName: '#cdata',
});

/** The root element's content, after checking the body is one well-formed document of that root. */
function parseDocument(body: string | Uint8Array, root: string, limit: number): unknown {
  const text = decodeUtf8(body, limit);
  if (/<!DOCTYPE|<!ENTITY/i.test(text) || XMLValidator.validate(text) !== true) throw malformed();
  let document: unknown;
  try {
    document = parser.parse(text);
  } catch {
    throw malformed();
  }
  if (!isRecord(document)) throw malformed();
  const roots = Object.keys(document);
  if (roots.length !== 1 || roots[0] !== root) throw malformed();
  return document[root];
}

function decodeUtf8(body: string | Uint8Array, limit: number): string {
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  if (size > limit) {
    throw new S3Error('MaxMessageLengthExceeded', 'Your request was too big.');
  }
  if (typeof body === 'string') return body;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw malformed();
  }
}

/** The child elements of that name (none for an empty or text-only element). */
function childrenOf(element: unknown, name: string): unknown[] {
  if (!isRecord(element)) return [];
  const children = element[name];
  if (children === undefined) return [];
  return Array.isArray(children) ? children : [children];
}

function requiredText(element: unknown, name: string): string {
  const text = optionalText(element, name);
  if (text === undefined) throw malformed();
  return text;
}

/** The text of the single child of that name, entities decoded. */
function optionalText(element: unknown, name: string): string | undefined {
  const children = childrenOf(element, name);
  if (children.length > 1) throw malformed();
  return children.length === 0 ? undefined : textOf(children[0]);
}

/** An element's text: plain text, or one CDATA section; never child elements. */
function textOf(value: unknown): string {
  if (typeof value === 'string') return decodeText(value);
  if (!isRecord(value)) throw malformed();
  const names = Object.keys(value);
  const cdata = value['#cdata'];
  if (names.length === 1 && typeof cdata === 'string') return cdata;
  throw malformed();
}

const REFERENCE = /&(?:#x([0-9a-fA-F]{1,6})|#([0-9]{1,7})|(amp|lt|gt|quot|apos));/y;
const PREDEFINED: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
};

/** Decodes XML's predefined entities and character references; any other `&` is malformed. */
function decodeText(raw: string): string {
  let out = '';
  let from = 0;
  for (let at = raw.indexOf('&'); at >= 0; at = raw.indexOf('&', from)) {
    REFERENCE.lastIndex = at;
    const match = REFERENCE.exec(raw);
    if (!match) throw malformed();
    out += raw.slice(from, at) + referenced(match);
    from = at + match[0].length;
  }
  return out + raw.slice(from);
}

function referenced([, hex, decimal, name]: RegExpExecArray): string {
  if (name !== undefined) return PREDEFINED[name]!;
  const point = parseInt(hex ?? decimal ?? '', hex !== undefined ? 16 : 10);
  // NUL and surrogates are characters of no XML document.
  if (point === 0 || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff)) throw malformed();
  return String.fromCodePoint(point);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function malformed(): S3Error {
  return new S3Error(
    'MalformedXML',
    'The XML you provided was not well-formed or did not validate against our published schema',
  );
}

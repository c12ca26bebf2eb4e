/**
 * ListObjects (v1) and ListObjectsV2 as pure functions over an ordered key
 * source: prefixes, delimiters, max-keys, markers and continuation tokens as
 * S3 answers them. Keys rolled into a common prefix are jumped over, not
 * read one by one.
 */
import { afterPrefix, compareKeys } from '../../shared/s3-names.js';
import { S3Error } from './s3-errors.js';

/** A bound of a scan: keys after `startAfter`, or from it on when `inclusive`. */
export interface ScanQuery {
  /** '' starts at the first key. */
  startAfter: string;
  /**
   * Whether a key equal to `startAfter` is wanted too: after a common prefix
   * the bound is its successor (`afterPrefix`), which may itself be a key.
   */
  inclusive: boolean;
  /** Only keys that start with it. */
  prefix: string;
  /** At most this many objects. */
  limit: number;
}

/**
 * Returns objects in UTF-8 byte order of their keys, within the query's
 * bounds; fewer than `limit` means there are no more.
 */
export type KeyScan<T extends { key: string }> = (query: ScanQuery) => Promise<readonly T[]>;

/** What to list: the part of a List request that shapes its page. */
export interface ListWindow {
  prefix: string;
  /** Empty or undefined: no common prefixes. */
  delimiter?: string | undefined;
  /** 0..1000. */
  maxKeys: number;
  /** List after this key (a marker, start-after or continuation token's key); '' from the start. */
  startAfter: string;
}

/** One page of a listing. */
export interface ListPage<T> {
  contents: T[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The last key or common prefix of the page, where the next page starts after. */
  last?: string;
}

/** S3's default and highest max-keys. */
export const MAX_KEYS = 1000;

/** The first scan of a delimited listing is small: its keys may all roll into one prefix. */
const FIRST_DELIMITED_BATCH = 16;

/** Lists one page: keys and common prefixes after `startAfter`, at most `maxKeys` of them together. */
export async function listPage<T extends { key: string }>(
  scan: KeyScan<T>,
  window: ListWindow,
): Promise<ListPage<T>> {
  const page: ListPage<T> = { contents: [], commonPrefixes: [], isTruncated: false };
  const delimiter = window.delimiter || undefined;
  // S3 answers max-keys=0 with an empty page that is not truncated.
  if (window.maxKeys === 0) return page;
  let bound = startBound(window.startAfter, window.prefix, delimiter);
  let batchSize = delimiter === undefined ? Infinity : FIRST_DELIMITED_BATCH;
  let rolling: string | undefined;
  while (bound !== undefined) {
    const count = page.contents.length + page.commonPrefixes.length;
    const limit = Math.min(window.maxKeys - count + 1, batchSize);
    const batch = await scan({ ...bound, prefix: window.prefix, limit });
    checkProgress(batch, bound);
    for (const item of batch) {
      // Keys under the prefix just returned are already counted.
      if (rolling !== undefined && item.key.startsWith(rolling)) continue;
      if (page.contents.length + page.commonPrefixes.length === window.maxKeys) {
        page.isTruncated = true;
        return page;
      }
      rolling = commonPrefixOf(item.key, window.prefix, delimiter);
      if (rolling === undefined) page.contents.push(item);
      else page.commonPrefixes.push(rolling);
      page.last = rolling ?? item.key;
    }
    if (batch.length < limit) return page;
    bound = nextBound(batch[batch.length - 1]!.key, rolling);
    // A batch that ended inside a prefix was partly wasted: start small again.
    batchSize = rolling === undefined ? batchSize * 2 : FIRST_DELIMITED_BATCH;
  }
  return page;
}

/**
 * The common prefix a key rolls into: the list prefix and what follows it up
 * to and including the first delimiter. Undefined when the key is a content.
 */
export function commonPrefixOf(
  key: string,
  prefix: string,
  delimiter: string | undefined,
): string | undefined {
  if (!delimiter) return undefined;
  const at = key.indexOf(delimiter, prefix.length);
  return at < 0 ? undefined : key.slice(0, at + delimiter.length);
}

type Bound = Omit<ScanQuery, 'prefix' | 'limit'>;

/**
 * A scan that ignores its bound would make the listing ask the same thing
 * forever: fail loudly instead.
 */
function checkProgress(batch: readonly { key: string }[], bound: Bound): void {
  const first = batch[0];
  if (first === undefined) return;
  const order = compareKeys(first.key, bound.startAfter);
  if (order < 0 || (order === 0 && !bound.inclusive)) {
    throw new Error(`key scan returned ${JSON.stringify(first.key)}, before its bound`);
  }
}

/**
 * Where a page starts. A start key inside a common prefix (the prefix itself,
 * as a previous page's last entry) skips the whole prefix: it was returned
 * already, and a listing never goes back before its start.
 */
function startBound(
  startAfter: string,
  prefix: string,
  delimiter: string | undefined,
): Bound | undefined {
  const rolled = startAfter.startsWith(prefix)
    ? commonPrefixOf(startAfter, prefix, delimiter)
    : undefined;
  return rolled === undefined ? { startAfter, inclusive: false } : jumpPast(rolled);
}

function nextBound(lastKey: string, rolling: string | undefined): Bound | undefined {
  return rolling === undefined ? { startAfter: lastKey, inclusive: false } : jumpPast(rolling);
}

/** Undefined when no key can follow the prefix: the listing is over. */
function jumpPast(prefix: string): Bound | undefined {
  const next = afterPrefix(prefix);
  return next === undefined ? undefined : { startAfter: next, inclusive: true };
}

/** max-keys (or max-parts, max-uploads) as S3 reads it: default 1000, above 1000 is 1000, not a count is an error. */
export function parseMaxKeys(raw: string | undefined, name = 'max-keys'): number {
  if (raw === undefined) return MAX_KEYS;
  if (!/^\d+$/.test(raw)) {
    throw new S3Error('InvalidArgument', `Provided ${name} not an integer or within integer range`);
  }
  return Math.min(Number(raw), MAX_KEYS);
}

/** The encoding-type parameter: only `url` exists. */
export function parseEncodingType(raw: string | undefined): 'url' | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (raw.toLowerCase() === 'url') return 'url';
  throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request');
}

/** A ListObjects (v1) request. */
export interface ListV1Request {
  prefix: string;
  delimiter?: string | undefined;
  maxKeys: number;
  marker: string;
  encodingType?: 'url' | undefined;
}

/** A ListObjects (v1) page; `nextMarker` only when truncated with a delimiter, as S3 does. */
export interface ListV1Result<T> extends ListPage<T> {
  nextMarker?: string;
}

/** A ListObjectsV2 request. */
export interface ListV2Request {
  prefix: string;
  delimiter?: string | undefined;
  maxKeys: number;
  startAfter?: string | undefined;
  continuationToken?: string | undefined;
  encodingType?: 'url' | undefined;
  /** Whether each object carries its Owner (v2 leaves it out unless asked). */
  fetchOwner: boolean;
}

/** A ListObjectsV2 page. */
export interface ListV2Result<T> extends ListPage<T> {
  /** Contents and common prefixes together. */
  keyCount: number;
  nextContinuationToken?: string;
}

/** The ListObjects (v1) request in a query. */
export function listV1Request(query: ReadonlyMap<string, string>): ListV1Request {
  return {
    prefix: query.get('prefix') ?? '',
    delimiter: query.get('delimiter') || undefined,
    maxKeys: parseMaxKeys(query.get('max-keys')),
    marker: query.get('marker') ?? '',
    encodingType: parseEncodingType(query.get('encoding-type')),
  };
}

/** The ListObjectsV2 request in a query; a bad continuation token is refused here. */
export function listV2Request(query: ReadonlyMap<string, string>): ListV2Request {
  const continuationToken = query.get('continuation-token');
  if (continuationToken !== undefined) decodeContinuationToken(continuationToken);
  return {
    prefix: query.get('prefix') ?? '',
    delimiter: query.get('delimiter') || undefined,
    maxKeys: parseMaxKeys(query.get('max-keys')),
    startAfter: query.get('start-after'),
    continuationToken,
    encodingType: parseEncodingType(query.get('encoding-type')),
    fetchOwner: query.get('fetch-owner') === 'true',
  };
}

export async function listObjectsV1<T extends { key: string }>(
  scan: KeyScan<T>,
  request: ListV1Request,
): Promise<ListV1Result<T>> {
  const page: ListV1Result<T> = await listPage(scan, { ...request, startAfter: request.marker });
  // Without a delimiter S3 leaves NextMarker out: clients continue after the last key.
  if (page.isTruncated && request.delimiter && page.last !== undefined) page.nextMarker = page.last;
  return page;
}

export async function listObjectsV2<T extends { key: string }>(
  scan: KeyScan<T>,
  request: ListV2Request,
): Promise<ListV2Result<T>> {
  // A continuation token wins over start-after, which only starts the first page.
  const startAfter =
    request.continuationToken !== undefined
      ? decodeContinuationToken(request.continuationToken)
      : (request.startAfter ?? '');
  const page = await listPage(scan, { ...request, startAfter });
  const result: ListV2Result<T> = {
    ...page,
    keyCount: page.contents.length + page.commonPrefixes.length,
  };
  if (page.isTruncated && page.last !== undefined) {
    result.nextContinuationToken = encodeContinuationToken(page.last);
  }
  return result;
}

/** Marks our tokens, so that a random base64url string is refused rather than listed after. */
const TOKEN_TAG = 't1:';

/** An opaque continuation token for "after this key or common prefix". */
export function encodeContinuationToken(last: string): string {
  return Buffer.from(TOKEN_TAG + last, 'utf8').toString('base64url');
}

/** The key a continuation token lists after; InvalidArgument for one we did not make. */
export function decodeContinuationToken(token: string): string {
  const bytes = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, 'base64url') : undefined;
  // Node's decoder skips what it cannot read: only a token that re-encodes to itself is ours.
  const text = bytes?.toString('base64url') === token ? utf8(bytes) : undefined;
  if (text === undefined || !text.startsWith(TOKEN_TAG)) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect');
  }
  return text.slice(TOKEN_TAG.length);
}

function utf8(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Conditional requests on S3 objects (GetObject, HeadObject, and CopyObject's
 * `x-amz-copy-source-if-*`): If-Match, If-None-Match, If-Modified-Since and
 * If-Unmodified-Since, evaluated in RFC 9110's order (section 13.2.2), which
 * is also S3's: a true If-Match makes If-Unmodified-Since moot, and a
 * present If-None-Match makes If-Modified-Since moot. Sync tools (rclone,
 * aws s3 sync) and browsers' caches depend on these answers.
 */

/** What a conditional request is evaluated against. */
export interface ObjectVersion {
  /** The quoted ETag, as sent in the `ETag` header. */
  etag: string;
  /** Last-Modified, ms since the epoch. */
  lastModified: number;
}

export interface Conditions {
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
}

/** proceed; 304 Not Modified; 412 Precondition Failed. */
export type ConditionOutcome = 'proceed' | 'not-modified' | 'precondition-failed';

export function evaluateConditions(
  conditions: Conditions,
  object: ObjectVersion,
): ConditionOutcome {
  if (conditions.ifMatch !== undefined) {
    if (!anyTagMatches(conditions.ifMatch, object.etag, 'strong')) return 'precondition-failed';
  } else if (conditions.ifUnmodifiedSince !== undefined) {
    const since = httpDate(conditions.ifUnmodifiedSince);
    if (since !== undefined && seconds(object.lastModified) > since) return 'precondition-failed';
  }
  if (conditions.ifNoneMatch !== undefined) {
    if (anyTagMatches(conditions.ifNoneMatch, object.etag, 'weak')) return 'not-modified';
  } else if (conditions.ifModifiedSince !== undefined) {
    const since = httpDate(conditions.ifModifiedSince);
    if (since !== undefined && seconds(object.lastModified) <= since) return 'not-modified';
  }
  return 'proceed';
}

/**
 * Whether `header` (`*`, or a comma-separated list of entity tags) names
 * `etag`. Strong comparison (If-Match) never matches a weak tag; weak
 * comparison (If-None-Match) ignores the `W/` prefix on both sides.
 */
export function anyTagMatches(header: string, etag: string, mode: 'strong' | 'weak'): boolean {
  if (header.trim() === '*') return true;
  const ours = parseTag(etag);
  if (!ours || (mode === 'strong' && ours.weak)) return false;
  return entityTags(header).some(
    (tag) => tag.opaque === ours.opaque && (mode === 'weak' || !tag.weak),
  );
}

interface EntityTag {
  weak: boolean;
  /** The quoted part, quotes included. */
  opaque: string;
}

/** The tags of a list; S3 clients sometimes send a tag unquoted, which is read as if quoted. */
function entityTags(header: string): EntityTag[] {
  return header
    .split(',')
    .map((part) => parseTag(part.trim()))
    .filter((tag): tag is EntityTag => tag !== undefined);
}

function parseTag(raw: string): EntityTag | undefined {
  const weak = raw.startsWith('W/');
  const rest = weak ? raw.slice(2) : raw;
  if (rest === '') return undefined;
  const opaque =
    rest.startsWith('"') && rest.endsWith('"') && rest.length >= 2 ? rest : `"${rest}"`;
  return { weak, opaque };
}

/** An HTTP date as whole seconds since the epoch; undefined when it is not a date (then ignored, per RFC 9110). */
function httpDate(value: string): number | undefined {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

/** HTTP dates have a one-second resolution: Last-Modified is compared as sent. */
function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

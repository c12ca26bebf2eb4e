import { describe, expect, it } from 'vitest';
import { anyTagMatches, evaluateConditions, type ObjectVersion } from './conditions.js';

const object: ObjectVersion = {
  etag: '"9b2cf535f27731c974343645a3985328"',
  lastModified: Date.parse('2026-12-05T10:00:00.750Z'),
};
const before = 'Sat, 05 Dec 2026 09:59:59 GMT';
const same = 'Sat, 05 Dec 2026 10:00:00 GMT';
const after = 'Sat, 05 Dec 2026 10:00:01 GMT';

describe('evaluateConditions', () => {
  it('proceeds without conditions', () => {
    expect(evaluateConditions({}, object)).toBe('proceed');
  });

  it('If-Match: proceeds on the ETag or *, 412 otherwise', () => {
    expect(evaluateConditions({ ifMatch: object.etag }, object)).toBe('proceed');
    expect(evaluateConditions({ ifMatch: '*' }, object)).toBe('proceed');
    expect(evaluateConditions({ ifMatch: `"other", ${object.etag}` }, object)).toBe('proceed');
    expect(evaluateConditions({ ifMatch: '"other"' }, object)).toBe('precondition-failed');
  });

  it('If-None-Match: 304 on the ETag (weakly compared) or *', () => {
    expect(evaluateConditions({ ifNoneMatch: object.etag }, object)).toBe('not-modified');
    expect(evaluateConditions({ ifNoneMatch: `W/${object.etag}` }, object)).toBe('not-modified');
    expect(evaluateConditions({ ifNoneMatch: '*' }, object)).toBe('not-modified');
    expect(evaluateConditions({ ifNoneMatch: '"other"' }, object)).toBe('proceed');
  });

  it('If-Modified-Since compares whole seconds: not modified at or after Last-Modified', () => {
    expect(evaluateConditions({ ifModifiedSince: before }, object)).toBe('proceed');
    expect(evaluateConditions({ ifModifiedSince: same }, object)).toBe('not-modified');
    expect(evaluateConditions({ ifModifiedSince: after }, object)).toBe('not-modified');
  });

  it('If-Unmodified-Since: 412 when modified since', () => {
    expect(evaluateConditions({ ifUnmodifiedSince: before }, object)).toBe('precondition-failed');
    expect(evaluateConditions({ ifUnmodifiedSince: same }, object)).toBe('proceed');
  });

  it('a true If-Match makes If-Unmodified-Since moot (S3 and RFC 9110)', () => {
    expect(evaluateConditions({ ifMatch: object.etag, ifUnmodifiedSince: before }, object)).toBe(
      'proceed',
    );
  });

  it('a present If-None-Match makes If-Modified-Since moot', () => {
    expect(evaluateConditions({ ifNoneMatch: '"other"', ifModifiedSince: after }, object)).toBe(
      'proceed',
    );
  });

  it('412 wins over 304', () => {
    expect(evaluateConditions({ ifMatch: '"other"', ifNoneMatch: object.etag }, object)).toBe(
      'precondition-failed',
    );
  });

  it('ignores a date that is not a date', () => {
    expect(evaluateConditions({ ifModifiedSince: 'yesterday' }, object)).toBe('proceed');
    expect(evaluateConditions({ ifUnmodifiedSince: 'soon' }, object)).toBe('proceed');
  });
});

describe('anyTagMatches', () => {
  it('reads an unquoted tag as quoted (some S3 clients send it so)', () => {
    expect(anyTagMatches('9b2cf535f27731c974343645a3985328', object.etag, 'strong')).toBe(true);
  });

  it('never matches a weak tag strongly', () => {
    expect(anyTagMatches(`W/${object.etag}`, object.etag, 'strong')).toBe(false);
    expect(anyTagMatches(object.etag, `W/${object.etag}`, 'strong')).toBe(false);
  });

  it('matches a multipart ETag whole, suffix included', () => {
    const multipart = '"d41d8cd98f00b204e9800998ecf8427e-3"';
    expect(anyTagMatches(multipart, multipart, 'strong')).toBe(true);
    expect(anyTagMatches('"d41d8cd98f00b204e9800998ecf8427e"', multipart, 'strong')).toBe(false);
  });
});

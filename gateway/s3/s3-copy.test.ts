import { describe, expect, it } from 'vitest';
import { checkCopyConditions, parseCopySource, parseMetadataDirective } from './s3-copy.js';

const code = (code: string) => expect.objectContaining({ code });

describe('parseCopySource', () => {
  it('reads bucket and key, with or without the leading slash, URL-decoded', () => {
    expect(parseCopySource('/src/a/b.jpg')).toEqual({ bucket: 'src', key: 'a/b.jpg' });
    expect(parseCopySource('src/a/b.jpg')).toEqual({ bucket: 'src', key: 'a/b.jpg' });
    expect(parseCopySource('/src/%C3%A9t%C3%A9%202026/x%2By%3F.jpg')).toEqual({
      bucket: 'src',
      key: 'été 2026/x+y?.jpg',
    });
  });

  it('accepts versionId=null only: the buckets are unversioned', () => {
    expect(parseCopySource('/src/k.jpg?versionId=null')).toEqual({ bucket: 'src', key: 'k.jpg' });
    expect(() => parseCopySource('/src/k.jpg?versionId=3HL4kqtJlcpXroDTDmJ')).toThrow(
      code('InvalidArgument'),
    );
  });

  it('refuses a source without a bucket or a key, or badly encoded', () => {
    for (const bad of ['', '/', '/src', '/src/', '//k.jpg', '/src/%E0%A4%A'])
      expect(() => parseCopySource(bad), bad).toThrow(code('InvalidArgument'));
    expect(() => parseCopySource(`/src/${'k'.repeat(1025)}`)).toThrow(code('KeyTooLongError'));
  });
});

describe('parseMetadataDirective', () => {
  it('is COPY by default, REPLACE when asked, and refuses anything else', () => {
    expect(parseMetadataDirective(undefined)).toBe('COPY');
    expect(parseMetadataDirective('COPY')).toBe('COPY');
    expect(parseMetadataDirective('REPLACE')).toBe('REPLACE');
    expect(() => parseMetadataDirective('replace-all')).toThrow(code('InvalidArgument'));
  });
});

describe('checkCopyConditions', () => {
  const source = { etag: '"abc"', lastModified: Date.parse('2026-12-01T10:00:00Z') };
  const before = 'Mon, 30 Nov 2026 10:00:00 GMT';
  const after = 'Wed, 02 Dec 2026 10:00:00 GMT';

  it('lets a copy through when every condition holds', () => {
    expect(() => checkCopyConditions({}, source)).not.toThrow();
    expect(() =>
      checkCopyConditions({ ifMatch: '"abc"', ifUnmodifiedSince: after }, source),
    ).not.toThrow();
    expect(() =>
      checkCopyConditions({ ifNoneMatch: '"zzz"', ifModifiedSince: before }, source),
    ).not.toThrow();
  });

  it('answers 412 PreconditionFailed for any that does not, even where a GET would be 304', () => {
    const cases: [Parameters<typeof checkCopyConditions>[0], string][] = [
      [{ ifMatch: '"zzz"' }, 'x-amz-copy-source-If-Match'],
      [{ ifUnmodifiedSince: before }, 'x-amz-copy-source-If-Unmodified-Since'],
      [{ ifNoneMatch: '"abc"' }, 'x-amz-copy-source-If-None-Match'],
      [{ ifModifiedSince: after }, 'x-amz-copy-source-If-Modified-Since'],
    ];
    for (const [conditions, condition] of cases) {
      let thrown: unknown;
      try {
        checkCopyConditions(conditions, source);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, condition).toMatchObject({
        code: 'PreconditionFailed',
        status: 412,
        details: { Condition: condition },
      });
    }
  });
});

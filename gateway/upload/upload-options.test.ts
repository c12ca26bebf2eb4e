import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../shared/errors.js';
import {
  optionsFromQuery,
  parseOption,
  resolveOptions,
  uploadOptionSchemas,
} from './upload-options.js';

const limits = {
  defaultMaxDownloads: 3,
  maxDownloadsLimit: 1000,
  defaultTtlSeconds: 3600,
  maxTtlSeconds: 86400,
};

describe('upload options', () => {
  it('defaults when absent', () => {
    expect(resolveOptions({}, limits)).toEqual({ maxDownloads: 3, ttlSeconds: 3600 });
  });

  it('accepts integers, 0 as unlimited, and ttl units', () => {
    expect(parseOption('max_downloads', '0', limits)).toBe(0);
    expect(parseOption('max_downloads', '1000', limits)).toBe(1000);
    expect(parseOption('ttl', '90', limits)).toBe(90);
    expect(parseOption('ttl', '30m', limits)).toBe(1800);
    expect(parseOption('ttl', '2h', limits)).toBe(7200);
    expect(parseOption('ttl', '1d', limits)).toBe(86400);
  });

  it.each([
    ['max_downloads', '-1'],
    ['max_downloads', '1.5'],
    ['max_downloads', 'three'],
    ['max_downloads', '1001'],
    ['max_downloads', ''],
    ['ttl', '0'],
    ['ttl', '2d'],
    ['ttl', '1w'],
    ['ttl', '1e3'],
  ] as const)('refuses %s=%s with a 400 naming it', (name, value) => {
    expect(() => parseOption(name, value, limits)).toThrow(BadRequestError);
    expect(() => parseOption(name, value, limits)).toThrow(name);
  });

  it('reads the query string', () => {
    expect(optionsFromQuery({ ttl: '60', other: 'x' }, limits)).toEqual({ ttl: 60 });
  });
});

describe('upload option schemas', () => {
  it('are built once per limits object: handlers and /openapi.json share them', () => {
    expect(uploadOptionSchemas(limits)).toBe(uploadOptionSchemas(limits));
    expect(uploadOptionSchemas({ ...limits })).not.toBe(uploadOptionSchemas(limits));
  });

  it('keep the limits in the schema the document is made from', () => {
    const { query } = uploadOptionSchemas(limits);
    expect(query.parse({ max_downloads: '1000', ttl: ' 1D ' })).toEqual({
      max_downloads: 1000,
      ttl: 86400,
    });
    expect(query.safeParse({ max_downloads: '1001' }).success).toBe(false);
  });
});

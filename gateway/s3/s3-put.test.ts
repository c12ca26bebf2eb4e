import { describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../shared/config.js';
import { objectOptions, userMetadataOf } from './s3-put.js';

const limits = loadGatewayConfig({}).limits;
const noDefaults = { defaultMaxDownloads: null, defaultTtlSeconds: null };

describe('objectOptions', () => {
  it('takes x-amz-meta-max-downloads and x-amz-meta-ttl as POST /upload takes its options', () => {
    expect(objectOptions({ 'max-downloads': '7', ttl: '2h' }, noDefaults, limits)).toEqual({
      maxDownloads: 7,
      ttlSeconds: 7200,
    });
  });

  it("falls back to the bucket's defaults, then the gateway's", () => {
    expect(objectOptions({}, { defaultMaxDownloads: 0, defaultTtlSeconds: 60 }, limits)).toEqual({
      maxDownloads: 0,
      ttlSeconds: 60,
    });
    expect(objectOptions({}, noDefaults, limits)).toEqual({
      maxDownloads: limits.defaultMaxDownloads,
      ttlSeconds: limits.defaultTtlSeconds,
    });
  });

  it('refuses a bad value with InvalidArgument naming the header', () => {
    expect(() => objectOptions({ ttl: 'forever' }, noDefaults, limits)).toThrow(
      expect.objectContaining({
        code: 'InvalidArgument',
        message: expect.stringMatching(/x-amz-meta-ttl/),
      }),
    );
    expect(() => objectOptions({ 'max-downloads': '-1' }, noDefaults, limits)).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
  });
});

describe('userMetadataOf', () => {
  it('keeps x-amz-meta-* without the prefix, and refuses more than 2 KB', () => {
    expect(
      userMetadataOf({ 'x-amz-meta-caption': 'sunset', 'content-type': 'image/jpeg' }),
    ).toEqual({
      caption: 'sunset',
    });
    expect(() => userMetadataOf({ 'x-amz-meta-big': 'x'.repeat(2100) })).toThrow(
      expect.objectContaining({ code: 'MetadataTooLarge' }),
    );
  });
});

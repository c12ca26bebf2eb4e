import { describe, expect, it } from 'vitest';
import { uploadSettings } from './upload-metadata.js';

const limits = {
  defaultMaxDownloads: 3,
  maxDownloadsLimit: 100,
  defaultTtlSeconds: 3600,
  maxTtlSeconds: 86400,
};

describe('uploadSettings', () => {
  it('takes the name and options from Upload-Metadata, defaults for the rest', () => {
    expect(uploadSettings({ filename: 'photo.jpg', ttl: '2h' }, limits)).toEqual({
      name: 'photo.jpg',
      maxDownloads: 3,
      ttlSeconds: 7200,
    });
    expect(uploadSettings({ name: 'a.png', max_downloads: '0' }, limits).maxDownloads).toBe(0);
    expect(uploadSettings({}, limits).name).toBe('file');
  });

  it('refuses an option out of bounds, naming it', () => {
    expect(() => uploadSettings({ max_downloads: '101' }, limits)).toThrow(/max_downloads/);
    expect(() => uploadSettings({ ttl: 'soon' }, limits)).toThrow(/ttl/);
  });

  it('lets a signed upload link fix options over the uploader', () => {
    expect(uploadSettings({ max_downloads: '5' }, limits, { max_downloads: 1 }).maxDownloads).toBe(
      1,
    );
  });
});

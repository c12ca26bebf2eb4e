import { describe, expect, it } from 'vitest';
import type { ResumableUpload } from '../../shared/metadata-store.js';
import { uploadMetadata, userMetadataOfUpload } from './multipart-uploads.js';

describe('the upload row keeps what the object will carry', () => {
  it('gives back the user metadata, not the content type', () => {
    const metadata = uploadMetadata({ caption: 'sunset', ttl: '2h' }, 'image/png');
    expect(metadata['content-type']).toBe('image/png');
    const row = { metadata } as unknown as ResumableUpload;
    expect(userMetadataOfUpload(row)).toEqual({ caption: 'sunset', ttl: '2h' });
  });

  it('keeps no content type that was not sent', () => {
    expect(uploadMetadata({}, undefined)).toEqual({});
  });
});

import { describe, expect, it } from 'vitest';
import { TooManyRequestsError } from '../../shared/errors.js';
import { asS3Error } from './s3-error-response.js';
import { limitCategory } from './s3-limits.js';
import type { S3Operation } from './s3-request.js';

describe('limitCategory', () => {
  it('counts what stores bytes as an upload, a read of an object as a download', () => {
    const uploads: S3Operation[] = [
      'PutObject',
      'CopyObject',
      'UploadPart',
      'UploadPartCopy',
      'CompleteMultipartUpload',
    ];
    for (const op of uploads) expect(limitCategory(op), op).toBe('uploads');
    expect(limitCategory('GetObject')).toBe('downloads');
  });

  it('leaves listings, heads, deletes and bucket calls unlimited, as the native API leaves its other routes', () => {
    const free: S3Operation[] = [
      'ListBuckets',
      'CreateBucket',
      'HeadBucket',
      'DeleteBucket',
      'GetBucketLocation',
      'ListObjects',
      'ListObjectsV2',
      'ListMultipartUploads',
      'ListParts',
      'HeadObject',
      'DeleteObject',
      'DeleteObjects',
      'CreateMultipartUpload',
      'AbortMultipartUpload',
      'NotImplemented',
    ];
    for (const op of free) expect(limitCategory(op), op).toBeUndefined();
  });
});

describe('a rate-limit refusal on the S3 port', () => {
  it("is S3's 503 SlowDown, with the limit's message", () => {
    const err = new TooManyRequestsError('too many uploads (RATE_LIMIT_UPLOADS)', 7);
    expect(asS3Error(err)).toMatchObject({
      code: 'SlowDown',
      status: 503,
      message: err.message,
    });
  });
});

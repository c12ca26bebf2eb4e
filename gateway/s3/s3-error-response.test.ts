import { describe, expect, it } from 'vitest';
import {
  BadRequestError,
  GoneError,
  PayloadTooLargeError,
  RangeNotSatisfiableError,
  UnavailableError,
  UnsupportedMediaTypeError,
} from '../../shared/errors.js';
import { asS3Error } from './s3-error-response.js';
import { S3Error } from './s3-errors.js';

describe('asS3Error', () => {
  it('keeps an S3Error as it is', () => {
    const err = new S3Error('NoSuchKey', 'gone');
    expect(asS3Error(err)).toBe(err);
  });

  it("maps Trove's typed errors onto S3's codes, message kept", () => {
    const cases: [Error, string, number][] = [
      [PayloadTooLargeError.forBytes(10), 'EntityTooLarge', 400],
      [new UnsupportedMediaTypeError('text/plain is not allowed'), 'InvalidRequest', 400],
      [new RangeNotSatisfiableError(5), 'InvalidRange', 416],
      [new UnavailableError('no quorum'), 'ServiceUnavailable', 503],
      [new GoneError('FILE_EXPIRED', 'expired'), 'NoSuchKey', 404],
      [new BadRequestError('bad'), 'InvalidRequest', 400],
    ];
    for (const [err, code, status] of cases) {
      expect(asS3Error(err)).toMatchObject({ code, status, message: err.message });
    }
  });

  it('leaves a bug unmapped (answered 500 InternalError and logged)', () => {
    expect(asS3Error(new TypeError('x is undefined'))).toBeUndefined();
  });
});

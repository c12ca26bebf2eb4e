import { describe, expect, it } from 'vitest';
import {
  BadRequestError,
  ClientGoneError,
  PayloadTooLargeError,
  UnavailableError,
} from '../shared/errors.js';
import { uploadOutcome } from './metrics.js';

describe('uploadOutcome', () => {
  it('tells refusals from failures and clients that left', () => {
    expect(uploadOutcome(new BadRequestError('no file'))).toBe('rejected');
    expect(uploadOutcome(PayloadTooLargeError.forBytes(10))).toBe('rejected');
    expect(uploadOutcome(new UnavailableError('quorum lost'))).toBe('failed');
    expect(uploadOutcome(new Error('a bug'))).toBe('failed');
    expect(uploadOutcome(new ClientGoneError())).toBe('aborted');
    expect(uploadOutcome(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(
      'aborted',
    );
  });
});

/**
 * The error of the S3 API: S3's own code string (`BadDigest`,
 * `SignatureDoesNotMatch`, ...) and its HTTP status, which S3 clients act on.
 */
import { TroveError } from '../../shared/errors.js';

export class S3Error extends TroveError {
  constructor(code: string, status: number, message: string) {
    super(code, status, message);
  }
}

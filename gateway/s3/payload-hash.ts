/**
 * The forms of `x-amz-content-sha256`: what a signature says about the body.
 * Checking the body against it is the streaming layer's work; the verifier
 * only refuses a value that names no form at all.
 */
import { S3Error } from './s3-errors.js';

/** The body is not covered by the signature. */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** aws-chunked body, each chunk signed, chained from the seed signature. */
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
/** As STREAMING_SIGNED, followed by signed trailing headers (a checksum). */
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
/** aws-chunked body, chunks unsigned, with trailing headers. */
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

const NAMED_FORMS: ReadonlySet<string> = new Set([
  UNSIGNED_PAYLOAD,
  STREAMING_SIGNED,
  STREAMING_SIGNED_TRAILER,
  STREAMING_UNSIGNED_TRAILER,
]);

/** Whether `value` is a sha256 of the whole body (64 hex digits, either case) rather than a named form. */
export const isPayloadDigest = (value: string): boolean => /^[0-9a-fA-F]{64}$/.test(value);

/** `value` if it is a form of x-amz-content-sha256 this gateway supports, else 400 InvalidArgument. */
export function checkContentSha256(value: string): string {
  if (isPayloadDigest(value) || NAMED_FORMS.has(value)) return value;
  throw new S3Error(
    'InvalidArgument',
    `x-amz-content-sha256 must be ${[...NAMED_FORMS].join(', ')} or a sha256 hex digest`,
    { ArgumentName: 'x-amz-content-sha256', ArgumentValue: value },
  );
}

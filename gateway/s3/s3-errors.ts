/**
 * Errors of the S3-compatible API. S3 clients read the error's `<Code>`
 * (SDKs branch on it: a RequestTimeTooSkewed makes them correct their clock
 * and retry), so each carries S3's own code string as its TroveError `code`,
 * and the status S3 answers it with. The XML body is rendered by the S3
 * layer from `code`, `message` and `details`.
 */
import { TroveError } from '../../shared/errors.js';

/** The HTTP status of each S3 error code raised by the gateway, as S3 answers them. */
const STATUS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IllegalLocationConstraintException: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidToken: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedTrailerError: 400,
  MalformedXML: 400,
  MaxMessageLengthExceeded: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  PreconditionFailed: 412,
  RequestTimeout: 400,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400,
} as const;

export type S3ErrorCode = keyof typeof STATUS;

export class S3Error extends TroveError {
  constructor(
    code: S3ErrorCode,
    message: string,
    /**
     * Extra elements of S3's error XML, in order (e.g. `Region`, or the
     * `CanonicalRequest` and `StringToSign` a client needs to find why its
     * signature differs).
     */
    readonly details: Readonly<Record<string, string>> = {},
  ) {
    super(code, STATUS[code], message);
  }
}

/**
 * AWS Signature Version 4 verification for the S3-compatible API, in both
 * of S3's forms: the `Authorization: AWS4-HMAC-SHA256 …` header and the
 * presigned URL's `X-Amz-*` query parameters. Pure: it takes the request as
 * received and a way to find a secret, and answers who signed it or throws
 * the S3Error S3 would answer with.
 *
 * A request with neither form is anonymous (`undefined`): whether that is
 * allowed is the caller's decision. Session tokens are refused: Trove has no
 * STS to issue them.
 */
import { timingSafeEqual } from 'node:crypto';
import { canonicalRequest, sha256Hex } from './canonical-request.js';
import type { RawRequest } from './canonical-request.js';
import { S3Error } from './s3-errors.js';
import {
  ALGORITHM,
  isoBasic,
  malformed,
  readClaim,
  SIGNATURE_PARAM,
  TERMINATOR,
} from './sigv4-claim.js';
import type { Claim } from './sigv4-claim.js';
import { SigningKeyCache } from './signing-key.js';

export type { RawRequest } from './canonical-request.js';

/** Finds the secret of an access key id; undefined: no such key. */
export type LookupSecret = (accessKeyId: string) => Promise<string | undefined>;

export interface SigV4Options {
  /** The one region this endpoint answers for; a credential scoped to another is refused. Default 'us-east-1'. */
  region?: string;
  /** The service of the credential scope. Default 's3'. */
  service?: string;
  /** The clock, in ms since the epoch. Default Date.now. */
  now?: () => number;
  /** How far a header-signed request's date may be from the clock, and a presigned URL's date ahead of it. Default 15 minutes, as S3. */
  maxSkewMs?: number;
  /** Memo of derived signing keys. Default: one shared by the process. */
  signingKeys?: SigningKeyCache;
}

/** A request whose signature verified: what the body and its chunks are then checked with. */
export interface SigV4Auth {
  accessKeyId: string;
  /**
   * What the signature says of the body: the `x-amz-content-sha256` header
   * (for a presigned URL, its `X-Amz-Content-Sha256` parameter in any case,
   * else UNSIGNED-PAYLOAD). Either a sha256 hex digest (either case) the
   * whole body must match, or one of the forms named in payload-hash.ts.
   */
  payloadHash: string;
  /** The request's signature (hex): the seed of an aws-chunked body's chain of chunk signatures. */
  signature: string;
  /** The derived signing key the chunk signatures are computed with (shared with the key cache: read it, never write it). */
  signingKey: Readonly<Buffer>;
  /** The credential scope, `YYYYMMDD/region/service/aws4_request`: a line of every chunk's string to sign. */
  scope: string;
  /** The request's timestamp as signed, ISO 8601 basic (`YYYYMMDDTHHMMSSZ`): a line of every chunk's string to sign. */
  amzDate: string;
  /** Signed by query parameters (a presigned URL) rather than an Authorization header. */
  presigned: boolean;
  /** When a presigned URL stops being valid, ms since the epoch. */
  expiresAt?: number;
}

/** How far a request's date may be from the clock, as S3 allows. */
const MAX_SKEW_MS = 15 * 60_000;

const defaultKeys = new SigningKeyCache();

/**
 * Verifies the SigV4 signature of `request`. Resolves the signer's
 * credentials, or undefined for an anonymous request; rejects with an
 * S3Error.
 */
export async function verifySigV4(
  request: RawRequest,
  lookupSecret: LookupSecret,
  options: SigV4Options = {},
): Promise<SigV4Auth | undefined> {
  const claim = checkedClaim(request, options);
  if (!claim) return undefined;
  return verifyClaim(request, claim, await lookupSecret(claim.accessKeyId), options);
}

/**
 * The request's claim, once it is well-formed, scoped to this endpoint,
 * in time, and signs every x-amz-* header; undefined for an anonymous
 * request. Throws the S3Error to answer otherwise. The first half of
 * verifySigV4, for a caller that has the secret at hand (s3-auth.ts).
 */
export function checkedClaim(request: RawRequest, options: SigV4Options = {}): Claim | undefined {
  const { region = 'us-east-1', service = 's3', now = Date.now, maxSkewMs = MAX_SKEW_MS } = options;
  const claim = readClaim(request);
  if (!claim) return undefined;
  checkScope(claim, region, service);
  checkTime(claim, now(), maxSkewMs);
  checkAmzHeadersSigned(request, claim);
  return claim;
}

/**
 * The second half of verifySigV4: `claim` (from checkedClaim) checked
 * against `secret`, its access key's (undefined: no such key).
 */
export function verifyClaim(
  request: RawRequest,
  claim: Claim,
  secret: string | undefined,
  options: SigV4Options = {},
): SigV4Auth {
  const { region = 'us-east-1', service = 's3', signingKeys = defaultKeys } = options;
  if (secret === undefined)
    throw new S3Error(
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
      { AWSAccessKeyId: claim.accessKeyId },
    );
  const signer = signingKeys.get(secret, claim.scope[0]!, region, service);
  const scope = claim.scope.join('/');
  const canonical = canonicalRequest(
    request,
    claim.signedHeaders,
    claim.payloadHash,
    claim.presigned ? SIGNATURE_PARAM : undefined,
  );
  const stringToSign = `${ALGORITHM}\n${claim.amzDate}\n${scope}\n${sha256Hex(canonical)}`;
  const expected = signer.hex(stringToSign);
  // Both 64 bytes: the claim's signature was checked to be 64 lower-case hex digits.
  if (!timingSafeEqual(Buffer.from(expected, 'latin1'), Buffer.from(claim.signature, 'latin1')))
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      {
        AWSAccessKeyId: claim.accessKeyId,
        StringToSign: stringToSign,
        SignatureProvided: claim.signature,
        CanonicalRequest: canonical,
      },
    );

  const auth: SigV4Auth = {
    accessKeyId: claim.accessKeyId,
    payloadHash: claim.payloadHash,
    signature: claim.signature,
    signingKey: signer.key,
    scope,
    amzDate: claim.amzDate,
    presigned: claim.presigned,
  };
  if (claim.expiresAt !== undefined) auth.expiresAt = claim.expiresAt;
  return auth;
}

/** The credential must be scoped to this endpoint's region and service, on the request's own date. */
function checkScope(claim: Claim, region: string, service: string): void {
  const [date, scopeRegion, scopeService, terminator] = claim.scope;
  if (scopeRegion !== region)
    throw malformed(
      claim.presigned,
      'Credential',
      `the region '${scopeRegion}' is wrong; expecting '${region}'`,
      { Region: region },
    );
  if (scopeService !== service)
    throw malformed(
      claim.presigned,
      'Credential',
      `incorrect service '${scopeService}'. This endpoint belongs to '${service}'.`,
    );
  if (terminator !== TERMINATOR)
    throw malformed(
      claim.presigned,
      'Credential',
      `incorrect terminal '${terminator}'. This endpoint uses '${TERMINATOR}'.`,
    );
  if (date !== claim.amzDate.slice(0, 8))
    throw malformed(
      claim.presigned,
      'Credential',
      `Invalid credential date "${date}". Date is not the same as X-Amz-Date: "${claim.amzDate.slice(0, 8)}".`,
    );
}

/**
 * A header-signed request must be within the skew of the clock, so a captured
 * one cannot be replayed later; a presigned URL lives from its date to its
 * expiry (a date ahead of the clock by more than the skew is refused).
 */
function checkTime(claim: Claim, now: number, maxSkewMs: number): void {
  const { time, expiresAt } = claim;
  if (expiresAt === undefined) {
    if (Math.abs(now - time) > maxSkewMs)
      throw new S3Error(
        'RequestTimeTooSkewed',
        'The difference between the request time and the current time is too large.',
        {
          RequestTime: claim.amzDate,
          ServerTime: isoBasic(now),
          MaxAllowedSkewMilliseconds: String(maxSkewMs),
        },
      );
    return;
  }
  if (time - now > maxSkewMs)
    throw new S3Error('AccessDenied', 'Request is not valid yet', {
      'X-Amz-Date': claim.amzDate,
      ServerTime: isoBasic(now),
    });
  if (now > expiresAt)
    throw new S3Error('AccessDenied', 'Request has expired', {
      'X-Amz-Expires': String(claim.expiresSeconds),
      Expires: isoBasic(expiresAt),
      ServerTime: isoBasic(now),
    });
}

/** Every x-amz-* header changes what S3 does, so an unsigned one could be slipped into a signed request. */
function checkAmzHeadersSigned(request: RawRequest, claim: Claim): void {
  const unsigned: string[] = [];
  for (const name in request.headers) {
    if (
      name.startsWith('x-amz-') &&
      request.headers[name] !== undefined &&
      !claim.signedHeaders.includes(name)
    )
      unsigned.push(name);
  }
  if (unsigned.length > 0)
    throw new S3Error(
      'AccessDenied',
      'There were headers present in the request which were not signed',
      { HeadersNotSigned: unsigned.join(', ') },
    );
}

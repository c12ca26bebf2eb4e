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
import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  canonicalRequest,
  decodeQueryComponent,
  rawQueryPairs,
  sha256Hex,
} from './canonical-request.js';
import type { RawRequest } from './canonical-request.js';
import { checkContentSha256, UNSIGNED_PAYLOAD } from './payload-hash.js';
import { S3Error } from './s3-errors.js';
import { SigningKeyCache } from './signing-key.js';

export type { RawRequest } from './canonical-request.js';

const ALGORITHM = 'AWS4-HMAC-SHA256';
const TERMINATOR = 'aws4_request';
/** The longest a presigned URL may live: a week, as in S3. */
const MAX_EXPIRES_SECONDS = 604_800;
const SIGNATURE_PARAM = 'X-Amz-Signature';
/** The parameters a presigned URL must carry, each once. */
const PRESIGN_PARAMS = [
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  SIGNATURE_PARAM,
] as const;

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
   * What the signature says of the body: the `x-amz-content-sha256` value (for
   * a presigned URL its `X-Amz-Content-Sha256` in any case, else UNSIGNED-PAYLOAD): a
   * sha256 hex digest (either case) the whole body must match, or a form named
   * in payload-hash.ts.
   */
  payloadHash: string;
  /** The request's signature (hex): the seed of an aws-chunked body's chain of chunk signatures. */
  signature: string;
  /** The derived signing key the chunk signatures are computed with (a copy: the caller's to keep). */
  signingKey: Buffer;
  /** The credential scope, `YYYYMMDD/region/service/aws4_request`: a line of every chunk's string to sign. */
  scope: string;
  /** The request's timestamp as signed, ISO 8601 basic (`YYYYMMDDTHHMMSSZ`): a line of every chunk's string to sign. */
  amzDate: string;
  /** Signed by query parameters (a presigned URL) rather than an Authorization header. */
  presigned: boolean;
  /** When a presigned URL stops being valid, ms since the epoch. */
  expiresAt?: number;
}

/** What a request claims about its signature, before anything is checked against the server's state. */
interface Claim {
  presigned: boolean;
  accessKeyId: string;
  scope: string[];
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payloadHash: string;
  expiresSeconds?: number;
}

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
  const {
    region = 'us-east-1',
    service = 's3',
    now = Date.now,
    maxSkewMs = 15 * 60_000,
    signingKeys = defaultKeys,
  } = options;
  const claim = readClaim(request);
  if (!claim) return undefined;
  checkScope(claim, region, service);
  const time = Date.parse(isoExtended(claim.amzDate));
  const expiresAt =
    claim.expiresSeconds === undefined ? undefined : time + claim.expiresSeconds * 1000;
  checkTime(claim, time, expiresAt, now(), maxSkewMs);
  checkAmzHeadersSigned(request, claim);

  const secret = await lookupSecret(claim.accessKeyId);
  if (secret === undefined)
    throw new S3Error(
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
      { AWSAccessKeyId: claim.accessKeyId },
    );
  const signingKey = signingKeys.get(secret, claim.scope[0]!, region, service);
  const scope = claim.scope.join('/');
  const canonical = canonicalRequest(
    request,
    claim.signedHeaders,
    claim.payloadHash,
    claim.presigned ? SIGNATURE_PARAM : undefined,
  );
  const stringToSign = [ALGORITHM, claim.amzDate, scope, sha256Hex(canonical)].join('\n');
  const expected = createHmac('sha256', signingKey).update(stringToSign).digest();
  // Both 32 bytes: the claim's signature was checked to be 64 hex digits.
  if (!timingSafeEqual(expected, Buffer.from(claim.signature, 'hex')))
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

  return {
    accessKeyId: claim.accessKeyId,
    payloadHash: claim.payloadHash,
    signature: claim.signature,
    signingKey: Buffer.from(signingKey),
    scope,
    amzDate: claim.amzDate,
    presigned: claim.presigned,
    ...(expiresAt !== undefined && { expiresAt }),
  };
}

/** The claim of whichever form the request is signed in; undefined when it is in neither. */
function readClaim(request: RawRequest): Claim | undefined {
  const query = authParams(request.rawQuery);
  const header = request.headers.authorization;
  // Any of these marks an attempt at a presigned URL, to be refused if incomplete.
  const presigned = ['X-Amz-Algorithm', 'X-Amz-Credential', SIGNATURE_PARAM].some((name) =>
    query.has(name),
  );
  if (header !== undefined && presigned)
    throw new S3Error(
      'InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified',
    );
  if (
    request.headers['x-amz-security-token'] !== undefined ||
    anyCase(query, 'X-Amz-Security-Token').length > 0
  )
    throw new S3Error('InvalidToken', 'Session tokens are not supported by this endpoint.');
  if (header !== undefined) return headerClaim(header, request.headers);
  return presigned ? queryClaim(query, request.headers) : undefined;
}

/**
 * The decoded values of the query's `X-Amz-*` parameters, by name. Any case
 * of the prefix: the SDK hoists a header into the query under the header's
 * own lower-case name (`x-amz-content-sha256=…`).
 */
function authParams(rawQuery: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  for (const [rawName, rawValue] of rawQueryPairs(rawQuery)) {
    const name = decodeQueryComponent(rawName).toString('utf8');
    if (name.slice(0, 6).toLowerCase() !== 'x-amz-') continue;
    const value = decodeQueryComponent(rawValue).toString('utf8');
    params.set(name, [...(params.get(name) ?? []), value]);
  }
  return params;
}

/** Every value of parameter `name` in `query`, whatever the case of its name. */
const anyCase = (query: Map<string, string[]>, name: string): string[] =>
  [...query].flatMap(([key, values]) => (key.toLowerCase() === name.toLowerCase() ? values : []));

const headerMalformed = (message: string, details?: Record<string, string>) =>
  new S3Error(
    'AuthorizationHeaderMalformed',
    `The authorization header is malformed; ${message}`,
    details,
  );

/** A malformed part of the signature: S3 names the error after the form the signature came in. */
const malformed = (
  presigned: boolean,
  field: 'Credential' | 'SignedHeaders' | 'Signature',
  message: string,
  details?: Record<string, string>,
): S3Error =>
  presigned
    ? new S3Error(
        'AuthorizationQueryParametersError',
        `Error parsing the X-Amz-${field} parameter; ${message}`,
        details,
      )
    : headerMalformed(message, details);

function headerClaim(header: string, headers: RawRequest['headers']): Claim {
  const space = header.indexOf(' ');
  if (space === -1 || header.slice(0, space) !== ALGORITHM)
    throw new S3Error(
      'InvalidRequest',
      `The authorization mechanism you have provided is not supported. Please use ${ALGORITHM}.`,
    );
  const fields = new Map<string, string>();
  for (const part of header.slice(space + 1).split(',')) {
    const match = /^\s*(Credential|SignedHeaders|Signature)=(\S+)\s*$/.exec(part);
    if (!match || fields.has(match[1]!))
      throw headerMalformed(
        `unexpected "${part.trim()}"; expecting Credential=…, SignedHeaders=…, Signature=…`,
      );
    fields.set(match[1]!, match[2]!);
  }
  const field = (name: 'Credential' | 'SignedHeaders' | 'Signature') =>
    fields.get(name) ?? missing(name);

  const payloadHash = headers['x-amz-content-sha256'];
  if (payloadHash === undefined)
    throw new S3Error(
      'InvalidRequest',
      'Missing required header for this request: x-amz-content-sha256',
    );
  return {
    presigned: false,
    ...parseCredential(field('Credential'), false),
    signedHeaders: parseSignedHeaders(field('SignedHeaders'), false),
    signature: parseSignature(field('Signature'), false),
    amzDate: headerDate(headers),
    payloadHash: checkContentSha256(payloadHash),
  };
}

function missing(field: 'Credential' | 'SignedHeaders' | 'Signature'): never {
  throw headerMalformed(`missing ${field}`);
}

/** The request time of a header-signed request: x-amz-date, else Date (which S3 also accepts), as ISO 8601 basic. */
function headerDate(headers: RawRequest['headers']): string {
  const amzDate = headers['x-amz-date'];
  const fromDate = headers.date === undefined ? NaN : Date.parse(headers.date);
  const value = amzDate ?? (Number.isNaN(fromDate) ? undefined : isoBasic(fromDate));
  if (value === undefined || !isIsoBasic(value))
    throw new S3Error(
      'AccessDenied',
      'AWS authentication requires a valid Date or x-amz-date header',
    );
  return value;
}

function queryClaim(query: Map<string, string[]>, headers: RawRequest['headers']): Claim {
  const value = (name: string): string => {
    const values = query.get(name) ?? [];
    if (values.length === 1) return values[0]!;
    throw new S3Error(
      'AuthorizationQueryParametersError',
      values.length === 0
        ? `Query-string authentication version 4 requires the ${PRESIGN_PARAMS.join(', ')} parameters.`
        : `${name} appears more than once in the query string.`,
    );
  };
  const [algorithm, credential, amzDate, expires, signedHeaders, signature] =
    PRESIGN_PARAMS.map(value);
  const queryError = (message: string) => new S3Error('AuthorizationQueryParametersError', message);
  if (algorithm !== ALGORITHM) throw queryError(`X-Amz-Algorithm only supports "${ALGORITHM}"`);
  if (!isIsoBasic(amzDate!))
    throw queryError(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  if (!/^\d{1,7}$/.test(expires!)) throw queryError('X-Amz-Expires should be a number');
  const expiresSeconds = Number(expires);
  if (expiresSeconds < 1 || expiresSeconds > MAX_EXPIRES_SECONDS)
    throw queryError(`X-Amz-Expires must be between 1 and ${MAX_EXPIRES_SECONDS} seconds (a week)`);

  // A presigned URL cannot know its body: UNSIGNED-PAYLOAD unless the signer said otherwise.
  const hashes = anyCase(query, 'X-Amz-Content-Sha256');
  if (hashes.length > 1) throw queryError('X-Amz-Content-Sha256 appears more than once');
  const payloadHash = hashes[0] ?? headers['x-amz-content-sha256'] ?? UNSIGNED_PAYLOAD;
  return {
    presigned: true,
    ...parseCredential(credential!, true),
    signedHeaders: parseSignedHeaders(signedHeaders!, true),
    signature: parseSignature(signature!, true),
    amzDate: amzDate!,
    payloadHash: checkContentSha256(payloadHash),
    expiresSeconds,
  };
}

/** `AKID/YYYYMMDD/region/service/aws4_request`: the key id and the four parts of the scope. */
function parseCredential(
  credential: string,
  presigned: boolean,
): Pick<Claim, 'accessKeyId' | 'scope'> {
  const parts = credential.split('/');
  const [accessKeyId, ...scope] = parts;
  if (parts.length !== 5 || !accessKeyId || !/^\d{8}$/.test(scope[0]!))
    throw malformed(
      presigned,
      'Credential',
      `the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/${TERMINATOR}".`,
    );
  return { accessKeyId, scope };
}

/** Lower-case header names joined by ';', host among them: S3 signs the host, or a signature could be replayed to any bucket's endpoint. */
function parseSignedHeaders(list: string, presigned: boolean): string[] {
  const names = list.split(';');
  if (!names.every((name) => /^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)))
    throw malformed(
      presigned,
      'SignedHeaders',
      `SignedHeaders "${list}" must be lower-case header names separated by ';'`,
    );
  if (!names.includes('host'))
    throw malformed(presigned, 'SignedHeaders', 'SignedHeaders must include host');
  return names;
}

function parseSignature(signature: string, presigned: boolean): string {
  if (!/^[0-9a-f]{64}$/.test(signature))
    throw malformed(presigned, 'Signature', 'the Signature must be 64 lower-case hex digits');
  return signature;
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
function checkTime(
  claim: Claim,
  time: number,
  expiresAt: number | undefined,
  now: number,
  maxSkewMs: number,
): void {
  const serverTime = isoBasic(now);
  if (expiresAt === undefined) {
    if (Math.abs(now - time) > maxSkewMs)
      throw new S3Error(
        'RequestTimeTooSkewed',
        'The difference between the request time and the current time is too large.',
        {
          RequestTime: claim.amzDate,
          ServerTime: serverTime,
          MaxAllowedSkewMilliseconds: String(maxSkewMs),
        },
      );
    return;
  }
  if (time - now > maxSkewMs)
    throw new S3Error('AccessDenied', 'Request is not valid yet', {
      'X-Amz-Date': claim.amzDate,
      ServerTime: serverTime,
    });
  if (now > expiresAt)
    throw new S3Error('AccessDenied', 'Request has expired', {
      'X-Amz-Expires': String(claim.expiresSeconds),
      Expires: isoBasic(expiresAt),
      ServerTime: serverTime,
    });
}

/** Every x-amz-* header changes what S3 does, so an unsigned one could be slipped into a signed request. */
function checkAmzHeadersSigned(request: RawRequest, claim: Claim): void {
  const unsigned = Object.keys(request.headers).filter(
    (name) =>
      name.startsWith('x-amz-') &&
      request.headers[name] !== undefined &&
      !claim.signedHeaders.includes(name),
  );
  if (unsigned.length > 0)
    throw new S3Error(
      'AccessDenied',
      'There were headers present in the request which were not signed',
      { HeadersNotSigned: unsigned.join(', ') },
    );
}

const isIsoBasic = (value: string): boolean =>
  /^\d{8}T\d{6}Z$/.test(value) && isoBasic(Date.parse(isoExtended(value))) === value;

/** `YYYYMMDDTHHMMSSZ` → `YYYY-MM-DDTHH:MM:SSZ`, which Date.parse reads. */
const isoExtended = (basic: string): string =>
  basic.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z');

const isoBasic = (ms: number): string =>
  Number.isFinite(ms) ? new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '') : '';

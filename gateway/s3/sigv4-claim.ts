/**
 * What a SigV4-signed request claims: its key id, scope, signed headers,
 * signature, time and payload hash, parsed from the Authorization header or
 * a presigned URL's query, each malformation refused with the S3Error S3
 * answers it with. Nothing here depends on the server's state; sigv4.ts
 * checks the claim against it.
 */
import type { RawRequest } from './canonical-request.js';
import { decodeQueryComponent, rawQueryPairs } from './canonical-request.js';
import { checkContentSha256, UNSIGNED_PAYLOAD } from './payload-hash.js';
import { S3Error } from './s3-errors.js';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const TERMINATOR = 'aws4_request';
/** The longest a presigned URL may live: a week, as in S3. */
const MAX_EXPIRES_SECONDS = 604_800;
export const SIGNATURE_PARAM = 'X-Amz-Signature';
/** The parameters a presigned URL must carry, each once. */
const PRESIGN_PARAMS = [
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  SIGNATURE_PARAM,
] as const;

/** What a request claims about its signature, before anything is checked against the server's state. */
export interface Claim {
  presigned: boolean;
  accessKeyId: string;
  scope: string[];
  signedHeaders: string[];
  signature: string;
  /** The request time as signed, ISO 8601 basic. */
  amzDate: string;
  /** The same, ms since the epoch. */
  time: number;
  payloadHash: string;
  /** A presigned URL's X-Amz-Expires. */
  expiresSeconds?: number;
  /** A presigned URL's end of validity, ms since the epoch. */
  expiresAt?: number;
}

/** The claim of whichever form the request is signed in; undefined when it is in neither. */
export function readClaim(request: RawRequest): Claim | undefined {
  // Most requests (every GetObject, PutObject) have no query to look through.
  const query = request.rawQuery === '' ? NO_PARAMS : authParams(request.rawQuery);
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
  if (presigned) return queryClaim(query, request.headers);
  // aws-cli's `s3 presign` signs with SigV2 (AWSAccessKeyId, Signature) unless set to s3v4.
  if (/(^|&)AWSAccessKeyId=/.test(request.rawQuery)) throw unsupportedMechanism();
  return undefined;
}

/** S3's answer to a signature of another version than 4. */
const unsupportedMechanism = () =>
  new S3Error(
    'InvalidRequest',
    `The authorization mechanism you have provided is not supported. Please use ${ALGORITHM}.`,
  );

const NO_PARAMS: ReadonlyMap<string, string[]> = new Map();

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
const anyCase = (query: ReadonlyMap<string, string[]>, name: string): string[] =>
  [...query].flatMap(([key, values]) => (key.toLowerCase() === name.toLowerCase() ? values : []));

const headerMalformed = (message: string, details?: Record<string, string>) =>
  new S3Error(
    'AuthorizationHeaderMalformed',
    `The authorization header is malformed; ${message}`,
    details,
  );

/** A malformed part of the signature: S3 names the error after the form the signature came in. */
export const malformed = (
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

/** The header as every SDK writes it: the fields in this order, each once, each value without a comma. */
const USUAL_HEADER =
  /^AWS4-HMAC-SHA256 Credential=([^\s,]+), ?SignedHeaders=([^\s,]+), ?Signature=([^\s,]+)$/;

function headerClaim(header: string, headers: RawRequest['headers']): Claim {
  const usual = USUAL_HEADER.exec(header);
  const field = usual
    ? (name: AuthField) => usual[AUTH_FIELDS.indexOf(name) + 1]!
    : headerFields(header);

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
    ...headerTime(headers),
    payloadHash: checkContentSha256(payloadHash),
  };
}

const AUTH_FIELDS = ['Credential', 'SignedHeaders', 'Signature'] as const;
type AuthField = (typeof AUTH_FIELDS)[number];

/** The fields of any other well-formed header: any order, spaces around them. */
function headerFields(header: string): (name: AuthField) => string {
  const space = header.indexOf(' ');
  if (space === -1 || header.slice(0, space) !== ALGORITHM) throw unsupportedMechanism();
  const fields = new Map<string, string>();
  for (const part of header.slice(space + 1).split(',')) {
    const match = /^\s*(Credential|SignedHeaders|Signature)=(\S+)\s*$/.exec(part);
    if (!match || fields.has(match[1]!))
      throw headerMalformed(
        `unexpected "${part.trim()}"; expecting Credential=…, SignedHeaders=…, Signature=…`,
      );
    fields.set(match[1]!, match[2]!);
  }
  return (name) => fields.get(name) ?? missing(name);
}

function missing(field: AuthField): never {
  throw headerMalformed(`missing ${field}`);
}

/** The request time of a header-signed request: x-amz-date, else Date (which S3 also accepts), as ISO 8601 basic. */
function headerTime(headers: RawRequest['headers']): Pick<Claim, 'amzDate' | 'time'> {
  const amzDate = headers['x-amz-date'];
  const fromDate = headers.date === undefined ? NaN : Date.parse(headers.date);
  const value = amzDate ?? (Number.isNaN(fromDate) ? undefined : isoBasic(fromDate));
  const time = value === undefined ? NaN : isoBasicTime(value);
  if (Number.isNaN(time))
    throw new S3Error(
      'AccessDenied',
      'AWS authentication requires a valid Date or x-amz-date header',
    );
  return { amzDate: value!, time };
}

function queryClaim(query: ReadonlyMap<string, string[]>, headers: RawRequest['headers']): Claim {
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

  const signedAt = requestTime(amzDate!);
  // A presigned URL cannot know its body: UNSIGNED-PAYLOAD unless the signer said otherwise.
  const hashes = anyCase(query, 'X-Amz-Content-Sha256');
  if (hashes.length > 1) throw queryError('X-Amz-Content-Sha256 appears more than once');
  const payloadHash = hashes[0] ?? headers['x-amz-content-sha256'] ?? UNSIGNED_PAYLOAD;
  return {
    presigned: true,
    ...parseCredential(credential!, true),
    signedHeaders: parseSignedHeaders(signedHeaders!, true),
    signature: parseSignature(signature!, true),
    ...signedAt,
    payloadHash: checkContentSha256(payloadHash),
    expiresSeconds,
    expiresAt: signedAt.time + expiresSeconds * 1000,
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

const isIsoBasic = (value: string): boolean => !Number.isNaN(isoBasicTime(value));

/**
 * The time (ms) of `YYYYMMDDTHHMMSSZ`; NaN unless it names a real date and
 * time. Read field by field: every signed request has one, and a string
 * rewritten for Date.parse, then formatted back to compare, cost several
 * times as much.
 */
function isoBasicTime(value: string): number {
  // Requests signed in the same second share their date: the last one read is kept.
  if (value === lastTime.value) return lastTime.ms;
  const ms = parseIsoBasic(value);
  lastTime = { value, ms };
  return ms;
}
let lastTime = { value: '', ms: NaN };

function parseIsoBasic(value: string): number {
  if (!/^\d{8}T\d{6}Z$/.test(value)) return NaN;
  const field = (from: number, to: number) => Number(value.slice(from, to));
  const [year, month, day] = [field(0, 4), field(4, 6) - 1, field(6, 8)];
  const [hours, minutes, seconds] = [field(9, 11), field(11, 13), field(13, 15)];
  if (hours > 23 || minutes > 59 || seconds > 59) return NaN;
  const ms = Date.UTC(year, month, day, hours, minutes, seconds);
  const date = new Date(ms);
  // Date.UTC rolls 31 February over into March, and years below 100 into the 1900s.
  const real =
    date.getUTCFullYear() === year && date.getUTCMonth() === month && date.getUTCDate() === day;
  return real ? ms : NaN;
}

const requestTime = (amzDate: string): Pick<Claim, 'amzDate' | 'time'> => ({
  amzDate,
  time: isoBasicTime(amzDate),
});

export const isoBasic = (ms: number): string =>
  Number.isFinite(ms) ? new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '') : '';

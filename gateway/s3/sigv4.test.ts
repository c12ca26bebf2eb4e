import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { buildQueryString, extendedEncodeURIComponent, HttpRequest } from '@smithy/core/protocols';
import { getCanonicalHeaders, getSigningKey, SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it, vi } from 'vitest';
import { checkContentSha256 } from './payload-hash.js';
import { S3Error } from './s3-errors.js';
import { SigningKeyCache } from './signing-key.js';
import { verifySigV4 } from './sigv4.js';
import type { RawRequest, SigV4Options } from './sigv4.js';
import { NodeSha256 } from '../../test/node-sha256.js';

const CREDENTIALS = { accessKeyId: 'AKIDTROVE0001', secretAccessKey: 'trove/s3cret+key=' };
const SIGNED_AT = new Date('2026-12-05T10:00:00Z');
const HOST = 'photos.s3.trove.test';
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

const lookup = vi.fn(async (id: string) =>
  id === CREDENTIALS.accessKeyId ? CREDENTIALS.secretAccessKey : undefined,
);

/** A signer set up as the SDK's S3 client sets up its own. */
function s3Signer(overrides: Partial<ConstructorParameters<typeof SignatureV4>[0]> = {}) {
  return new SignatureV4({
    credentials: CREDENTIALS,
    region: 'us-east-1',
    service: 's3',
    sha256: NodeSha256,
    uriEscapePath: false,
    applyChecksum: true,
    ...overrides,
  });
}

/** A request as the S3 client builds it: the path already percent-encoded, the query decoded. */
function request(init: {
  method?: string;
  path?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: unknown;
}): HttpRequest {
  return new HttpRequest({
    method: init.method ?? 'GET',
    protocol: 'https:',
    hostname: HOST,
    path: init.path ?? '/photos/cat.jpg',
    query: init.query ?? {},
    headers: { host: HOST, ...init.headers },
    body: init.body,
  });
}

/** What the server receives of a signed request: the wire's path, query and headers. */
function received(signed: HttpRequest): RawRequest {
  return {
    method: signed.method,
    rawPath: signed.path,
    rawQuery: buildQueryString(signed.query),
    headers: Object.fromEntries(
      Object.entries(signed.headers).map(([name, value]) => [name.toLowerCase(), value]),
    ),
  };
}

const at = (ms: number): SigV4Options => ({ now: () => SIGNED_AT.getTime() + ms });

async function signed(init: Parameters<typeof request>[0], signer = s3Signer()) {
  return received((await signer.sign(request(init), { signingDate: SIGNED_AT })) as HttpRequest);
}

/** The SDK's signing steps, for a request its signer would not produce (one dated by `Date`). */
class StepSigner extends SignatureV4 {
  async authorization(req: HttpRequest, payloadHash: string): Promise<string> {
    const headers = getCanonicalHeaders(req);
    const scope = '20261205/us-east-1/s3/aws4_request';
    const stringToSign = await this.createStringToSign(
      '20261205T100000Z',
      scope,
      this.createCanonicalRequest(req, headers, payloadHash),
      'AWS4-HMAC-SHA256',
    );
    const signature = await this.sign(stringToSign, { signingDate: SIGNED_AT });
    return `AWS4-HMAC-SHA256 Credential=${CREDENTIALS.accessKeyId}/${scope}, SignedHeaders=${Object.keys(headers).sort().join(';')}, Signature=${signature}`;
  }
}

/**
 * A presigned URL. Without a body, the request gets the header the S3
 * presigner adds (x-amz-content-sha256: UNSIGNED-PAYLOAD, hoisted into the
 * query); the bare signer would sign the empty body's hash instead.
 */
async function presigned(
  init: Parameters<typeof request>[0],
  options: { expiresIn?: number; signer?: SignatureV4; unhoistable?: string[] } = {},
) {
  const signer = options.signer ?? s3Signer();
  const headers =
    init.body === undefined
      ? { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...init.headers }
      : init.headers;
  const url = await signer.presign(request({ ...init, headers }), {
    signingDate: SIGNED_AT,
    expiresIn: options.expiresIn ?? 3600,
    unhoistableHeaders: new Set(options.unhoistable ?? []),
  });
  return received(url as HttpRequest);
}

/** The rejection of `promise`, which must be an S3Error of `code`. */
async function s3Error(promise: Promise<unknown>, code: string): Promise<S3Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(S3Error);
  expect((err as S3Error).code).toBe(code);
  return err as S3Error;
}

const withHeader = (raw: RawRequest, name: string, value: string | undefined): RawRequest => ({
  ...raw,
  headers: { ...raw.headers, [name]: value },
});

const authorization = (raw: RawRequest) => raw.headers.authorization!;

describe('verifySigV4, Authorization header', () => {
  it('verifies a ListObjectsV2 GET and returns what the chunk verifier needs', async () => {
    const raw = await signed({
      query: { 'list-type': '2', prefix: 'a b', delimiter: '/', 'encoding-type': 'url' },
      path: '/photos/',
    });
    expect(raw.rawQuery).toBe('delimiter=%2F&encoding-type=url&list-type=2&prefix=a%20b');
    // The order a client sends its parameters in is its own: the canonical query sorts them.
    const asSent = { ...raw, rawQuery: 'list-type=2&prefix=a%20b&delimiter=%2F&encoding-type=url' };

    const auth = await verifySigV4(asSent, lookup, at(1000));
    const sdkKey = await getSigningKey(NodeSha256, CREDENTIALS, '20261205', 'us-east-1', 's3');
    expect(auth).toEqual({
      accessKeyId: CREDENTIALS.accessKeyId,
      payloadHash: EMPTY_SHA256,
      signature: /Signature=([0-9a-f]{64})$/.exec(authorization(raw))![1],
      signingKey: Buffer.from(sdkKey),
      scope: '20261205/us-east-1/s3/aws4_request',
      amzDate: '20261205T100000Z',
      presigned: false,
    });
  });

  it('verifies a PUT whose body hash is signed, and gives that hash back', async () => {
    const raw = await signed({ method: 'PUT', body: 'hello, trove' });
    const auth = await verifySigV4(raw, lookup, at(0));
    expect(auth?.payloadHash).toBe(createHash('sha256').update('hello, trove').digest('hex'));
  });

  it('reads the Authorization header in any field order and spacing; a field twice is malformed', async () => {
    const raw = await signed({});
    const [credential, signedHeaders, signature] = authorization(raw)
      .slice('AWS4-HMAC-SHA256 '.length)
      .split(', ');
    const reordered = `AWS4-HMAC-SHA256  ${signature} ,${credential},  ${signedHeaders}`;
    const auth = await verifySigV4(withHeader(raw, 'authorization', reordered), lookup, at(0));
    expect(auth?.signature).toBe(signature!.slice('Signature='.length));
    const twice = `${authorization(raw)}, ${signature}`;
    await s3Error(
      verifySigV4(withHeader(raw, 'authorization', twice), lookup, at(0)),
      'AuthorizationHeaderMalformed',
    );
  });

  it('verifies UNSIGNED-PAYLOAD and the streaming forms', async () => {
    for (const form of ['UNSIGNED-PAYLOAD', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD']) {
      const raw = await signed({ method: 'PUT', headers: { 'x-amz-content-sha256': form } });
      expect((await verifySigV4(raw, lookup, at(0)))?.payloadHash).toBe(form);
    }
  });

  it('verifies keys with spaces, UTF-8, +, ~ and = in the path as the client encoded it', async () => {
    for (const key of ['ünïcode file.jpg', 'a+b~c=d.jpg', 'dir/with space/ü+ü.png']) {
      const path = `/photos/${key.split('/').map(extendedEncodeURIComponent).join('/')}`;
      const raw = await signed({
        method: 'PUT',
        path,
        headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      });
      expect(raw.rawPath).toBe(path);
      await expect(verifySigV4(raw, lookup, at(0))).resolves.toMatchObject({ presigned: false });
    }
  });

  it('does not encode the path twice: a signer doing so (the SDK default for other services) fails', async () => {
    const path = `/photos/${extendedEncodeURIComponent('a file.jpg')}`;
    const raw = await signed({ path }, s3Signer({ uriEscapePath: true }));
    const err = await s3Error(verifySigV4(raw, lookup, at(0)), 'SignatureDoesNotMatch');
    expect(err.details.CanonicalRequest).toContain('\n/photos/a%20file.jpg\n');
  });

  it('reads + in the query as a space, and re-encodes the query before comparing', async () => {
    const spaced = await signed({ query: { prefix: 'a b' } });
    const asPlus = { ...spaced, rawQuery: 'prefix=a+b' };
    await expect(verifySigV4(asPlus, lookup, at(0))).resolves.toBeDefined();

    const plus = await signed({ query: { prefix: 'a+b' } });
    expect(plus.rawQuery).toBe('prefix=a%2Bb');
    await expect(verifySigV4(plus, lookup, at(0))).resolves.toBeDefined();
    await s3Error(
      verifySigV4({ ...plus, rawQuery: 'prefix=a+b' }, lookup, at(0)),
      'SignatureDoesNotMatch',
    );

    const slash = await signed({ query: { delimiter: '/', 'max-keys': '2' } });
    const reordered = { ...slash, rawQuery: 'max-keys=2&delimiter=%2f' };
    await expect(verifySigV4(reordered, lookup, at(0))).resolves.toBeDefined();
  });

  it('canonicalises header values: trimmed, inner runs of spaces as one', async () => {
    const raw = await signed({ headers: { 'x-amz-meta-note': '  two   spaces  here ' } });
    await expect(verifySigV4(raw, lookup, at(0))).resolves.toBeDefined();
    const respaced = withHeader(raw, 'x-amz-meta-note', 'two spaces here');
    await expect(verifySigV4(respaced, lookup, at(0))).resolves.toBeDefined();
  });

  it('verifies what the S3 client itself sends (PutObject with a UTF-8 key, ListObjectsV2)', async () => {
    let captured: HttpRequest | undefined;
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      credentials: CREDENTIALS,
      maxAttempts: 1,
      requestHandler: {
        handle: async (req: HttpRequest) => {
          captured = req;
          throw new Error('captured');
        },
      },
    });
    const verifyCaptured = async () => {
      const raw = received(captured!);
      const auth = await verifySigV4(raw, lookup);
      expect(auth?.payloadHash).toBe(raw.headers['x-amz-content-sha256']);
      return raw;
    };
    const put = new PutObjectCommand({ Bucket: 'photos', Key: 'ünïcode file+~=.jpg', Body: 'hi' });
    await expect(client.send(put)).rejects.toThrow('captured');
    expect((await verifyCaptured()).rawPath).toBe('/photos/%C3%BCn%C3%AFcode%20file%2B~%3D.jpg');
    const list = new ListObjectsV2Command({ Bucket: 'photos', Prefix: 'a b+c', Delimiter: '/' });
    await expect(client.send(list)).rejects.toThrow('captured');
    expect((await verifyCaptured()).rawQuery).toContain('prefix=a%20b%2Bc');
  });

  it('takes the time from the Date header when there is no x-amz-date, and needs one of them', async () => {
    const headers = { date: SIGNED_AT.toUTCString(), 'x-amz-content-sha256': EMPTY_SHA256 };
    const req = request({ headers });
    const signer = new StepSigner({
      credentials: CREDENTIALS,
      region: 'us-east-1',
      service: 's3',
      sha256: NodeSha256,
      uriEscapePath: false,
    });
    const raw = withHeader(
      received(req),
      'authorization',
      await signer.authorization(req, EMPTY_SHA256),
    );
    expect(raw.headers.authorization).toContain('SignedHeaders=date;host;x-amz-content-sha256,');
    await expect(verifySigV4(raw, lookup, at(0))).resolves.toMatchObject({
      amzDate: '20261205T100000Z',
    });
    await s3Error(verifySigV4(withHeader(raw, 'date', undefined), lookup, at(0)), 'AccessDenied');
    const garbled = withHeader(raw, 'x-amz-date', '2026-12-05T10:00:00Z');
    await s3Error(verifySigV4(garbled, lookup, at(0)), 'AccessDenied');
    // Shaped right, but no such day or time: refused, never rolled over into another one.
    for (const unreal of ['20260231T100000Z', '20261205T240000Z', '20261205T106000Z'])
      await s3Error(
        verifySigV4(withHeader(raw, 'x-amz-date', unreal), lookup, at(0)),
        'AccessDenied',
      );
  });

  it('is anonymous without an Authorization header or X-Amz-Signature, asking for no secret', async () => {
    lookup.mockClear();
    const raw = {
      method: 'GET',
      rawPath: '/photos/cat.jpg',
      rawQuery: 'versionId=3',
      headers: { host: HOST },
    };
    await expect(verifySigV4(raw, lookup)).resolves.toBeUndefined();
    expect(lookup).not.toHaveBeenCalled();
  });
});

describe('verifySigV4, Authorization header refusals', () => {
  it('SignatureDoesNotMatch for a wrong secret, with the canonical request for the client to compare', async () => {
    const raw = await signed({ query: { prefix: 'x' } });
    const err = await s3Error(
      verifySigV4(raw, async () => 'not-the-secret', at(0)),
      'SignatureDoesNotMatch',
    );
    expect(err.status).toBe(403);
    expect(err.details.CanonicalRequest).toMatch(/^GET\n\/photos\/cat\.jpg\nprefix=x\n/);
    expect(err.details.StringToSign).toMatch(
      /^AWS4-HMAC-SHA256\n20261205T100000Z\n20261205\/us-east-1\/s3\/aws4_request\n[0-9a-f]{64}$/,
    );
  });

  it('InvalidAccessKeyId for a key it does not know', async () => {
    const raw = await signed(
      {},
      s3Signer({ credentials: { ...CREDENTIALS, accessKeyId: 'AKIDNOBODY' } }),
    );
    const err = await s3Error(verifySigV4(raw, lookup, at(0)), 'InvalidAccessKeyId');
    expect(err.status).toBe(403);
  });

  it('SignatureDoesNotMatch when the method, path, query or a signed header was changed', async () => {
    const raw = await signed({
      query: { prefix: 'a' },
      headers: { range: 'bytes=0-9', 'x-amz-meta-owner': 'ann' },
    });
    await expect(verifySigV4(raw, lookup, at(0))).resolves.toBeDefined();
    const tampered: RawRequest[] = [
      { ...raw, method: 'DELETE' },
      { ...raw, rawPath: '/photos/dog.jpg' },
      { ...raw, rawPath: '/photos/cat.jpg/' },
      { ...raw, rawQuery: 'prefix=b' },
      { ...raw, rawQuery: 'prefix=a&acl' },
      withHeader(raw, 'range', 'bytes=0-99'),
      withHeader(raw, 'x-amz-meta-owner', 'bob'),
      withHeader(raw, 'host', 'evil.test'),
    ];
    for (const request of tampered)
      await s3Error(verifySigV4(request, lookup, at(0)), 'SignatureDoesNotMatch');
  });

  it('AccessDenied for an x-amz-* header that was not signed', async () => {
    const raw = withHeader(await signed({}), 'x-amz-copy-source', '/private/secret.jpg');
    const err = await s3Error(verifySigV4(raw, lookup, at(0)), 'AccessDenied');
    expect(err.details.HeadersNotSigned).toBe('x-amz-copy-source');
  });

  it('RequestTimeTooSkewed past 15 minutes either way, not within', async () => {
    const raw = await signed({});
    const minute = 60_000;
    await expect(verifySigV4(raw, lookup, at(15 * minute))).resolves.toBeDefined();
    await expect(verifySigV4(raw, lookup, at(-15 * minute))).resolves.toBeDefined();
    for (const off of [15 * minute + 1000, -16 * minute]) {
      const err = await s3Error(verifySigV4(raw, lookup, at(off)), 'RequestTimeTooSkewed');
      expect(err.status).toBe(403);
    }
  });

  it('AuthorizationHeaderMalformed naming the expected region for a credential of another', async () => {
    const raw = await signed({}, s3Signer({ region: 'eu-west-1' }));
    const err = await s3Error(verifySigV4(raw, lookup, at(0)), 'AuthorizationHeaderMalformed');
    expect(err.status).toBe(400);
    expect(err.message).toContain("the region 'eu-west-1' is wrong; expecting 'us-east-1'");
    expect(err.details.Region).toBe('us-east-1');
    await expect(
      verifySigV4(raw, lookup, { ...at(0), region: 'eu-west-1' }),
    ).resolves.toBeDefined();
  });

  it('AuthorizationHeaderMalformed for another service, or a scope date not the request date', async () => {
    const other = await signed({}, s3Signer({ service: 'iam' }));
    await s3Error(verifySigV4(other, lookup, at(0)), 'AuthorizationHeaderMalformed');
    const raw = await signed({});
    const nextDay = withHeader(raw, 'x-amz-date', '20261206T000500Z');
    await s3Error(
      verifySigV4(nextDay, lookup, { now: () => Date.parse('2026-12-06T00:05:00Z') }),
      'AuthorizationHeaderMalformed',
    );
  });

  it('AuthorizationHeaderMalformed for a malformed Authorization header', async () => {
    const raw = await signed({});
    const good = authorization(raw);
    const [credential, signedHeaders, signature] = good
      .slice('AWS4-HMAC-SHA256 '.length)
      .split(', ');
    const malformed = [
      'AWS4-HMAC-SHA256 ',
      `AWS4-HMAC-SHA256 ${credential}, ${signedHeaders}`,
      `AWS4-HMAC-SHA256 ${credential}, ${signedHeaders}, ${signature}, ${signature}`,
      `AWS4-HMAC-SHA256 ${credential}, ${signedHeaders}, ${signature}, Extra=1`,
      good.replace('/aws4_request', ''),
      good.replace('/20261205/', '/2026-12-05/'),
      good.replace(/Signature=[0-9a-f]+/, 'Signature=abc'),
      good.replace(/Signature=[0-9a-f]+/, (s) => s.toUpperCase().replace('SIGNATURE', 'Signature')),
      good.replace('SignedHeaders=', 'SignedHeaders=Host;'),
      good.replace('SignedHeaders=host;', 'SignedHeaders='),
    ];
    for (const header of malformed)
      await s3Error(
        verifySigV4(withHeader(raw, 'authorization', header), lookup, at(0)),
        'AuthorizationHeaderMalformed',
      );
  });

  it('InvalidRequest for another scheme, or without x-amz-content-sha256; InvalidArgument for a bad one', async () => {
    const raw = await signed({});
    const v2 = withHeader(raw, 'authorization', `AWS ${CREDENTIALS.accessKeyId}:c2lnbmF0dXJl`);
    await s3Error(verifySigV4(v2, lookup, at(0)), 'InvalidRequest');
    const noHash = withHeader(raw, 'x-amz-content-sha256', undefined);
    const err = await s3Error(verifySigV4(noHash, lookup, at(0)), 'InvalidRequest');
    expect(err.message).toContain('x-amz-content-sha256');
    const badHash = withHeader(raw, 'x-amz-content-sha256', 'sha256-of-something');
    expect((await s3Error(verifySigV4(badHash, lookup, at(0)), 'InvalidArgument')).status).toBe(
      400,
    );
  });

  it('InvalidToken for a session token: there is no STS to have issued it', async () => {
    const raw = await signed(
      {},
      s3Signer({ credentials: { ...CREDENTIALS, sessionToken: 'tok' } }),
    );
    await s3Error(verifySigV4(raw, lookup, at(0)), 'InvalidToken');
  });
});

describe('verifySigV4, presigned URLs', () => {
  it('verifies a presigned GET as the S3 presigner makes it (X-Amz-Content-Sha256=UNSIGNED-PAYLOAD)', async () => {
    const raw = await presigned({});
    // Hoisted under the header's own (lower-case) name.
    expect(raw.rawQuery).toContain('x-amz-content-sha256=UNSIGNED-PAYLOAD');
    const auth = await verifySigV4(raw, lookup, at(60_000));
    expect(auth).toMatchObject({
      accessKeyId: CREDENTIALS.accessKeyId,
      payloadHash: 'UNSIGNED-PAYLOAD',
      signature: new URLSearchParams(raw.rawQuery).get('X-Amz-Signature'),
      scope: '20261205/us-east-1/s3/aws4_request',
      amzDate: '20261205T100000Z',
      presigned: true,
      expiresAt: SIGNED_AT.getTime() + 3600_000,
    });
  });

  it('takes the payload hash the URL names', async () => {
    const hash = createHash('sha256').update('the body').digest('hex');
    const raw = await presigned({ method: 'PUT', headers: { 'x-amz-content-sha256': hash } });
    expect(raw.rawQuery).toContain(`x-amz-content-sha256=${hash}`);
    await expect(verifySigV4(raw, lookup, at(0))).resolves.toMatchObject({ payloadHash: hash });
  });

  it('takes UNSIGNED-PAYLOAD when the URL names no payload hash', async () => {
    // A body the signer cannot hash (a stream) is what makes it sign UNSIGNED-PAYLOAD implicitly.
    const raw = await presigned({ method: 'PUT', body: Readable.from([]) });
    expect(raw.rawQuery).not.toContain('Content-Sha256');
    await expect(verifySigV4(raw, lookup, at(0))).resolves.toMatchObject({
      payloadHash: 'UNSIGNED-PAYLOAD',
    });
  });

  it('verifies a presigned PUT of a UTF-8 key with a signed header left as a header', async () => {
    const path = `/photos/${extendedEncodeURIComponent('ünïcode file+1.jpg')}`;
    const raw = await presigned(
      { method: 'PUT', path, headers: { 'x-amz-acl': 'private' } },
      { unhoistable: ['x-amz-acl'] },
    );
    expect(raw.headers['x-amz-acl']).toBe('private');
    await expect(verifySigV4(raw, lookup, at(0))).resolves.toBeDefined();
    await s3Error(
      verifySigV4(withHeader(raw, 'x-amz-acl', 'public-read'), lookup, at(0)),
      'SignatureDoesNotMatch',
    );
  });

  it('verifies a URL from getSignedUrl with a path-style client', async () => {
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      credentials: CREDENTIALS,
    });
    const command = new GetObjectCommand({ Bucket: 'photos', Key: 'dir/ünïcode file+~=.jpg' });
    const url = new URL(
      await getSignedUrl(client, command, { expiresIn: 900, signingDate: SIGNED_AT }),
    );
    const raw: RawRequest = {
      method: 'GET',
      rawPath: url.pathname,
      rawQuery: url.search.slice(1),
      headers: { host: url.host },
    };
    expect(raw.rawPath).toBe('/photos/dir/%C3%BCn%C3%AFcode%20file%2B~%3D.jpg');
    await expect(verifySigV4(raw, lookup, at(899_000))).resolves.toMatchObject({
      presigned: true,
      expiresAt: SIGNED_AT.getTime() + 900_000,
    });
    await s3Error(verifySigV4(raw, lookup, at(901_000)), 'AccessDenied');
  });

  it('AccessDenied "Request has expired" past X-Amz-Expires, and for a date ahead of the clock', async () => {
    const raw = await presigned({}, { expiresIn: 60 });
    await expect(verifySigV4(raw, lookup, at(60_000))).resolves.toBeDefined();
    const expired = await s3Error(verifySigV4(raw, lookup, at(61_000)), 'AccessDenied');
    expect(expired.message).toBe('Request has expired');
    expect(expired.status).toBe(403);
    const early = await s3Error(verifySigV4(raw, lookup, at(-16 * 60_000)), 'AccessDenied');
    expect(early.message).toBe('Request is not valid yet');
  });

  it('SignatureDoesNotMatch for a tampered path, query, host, or a wrong secret', async () => {
    const raw = await presigned({ query: { 'response-content-type': 'image/png' } });
    await expect(verifySigV4(raw, lookup, at(0))).resolves.toBeDefined();
    const tampered: RawRequest[] = [
      { ...raw, rawPath: '/photos/dog.jpg' },
      { ...raw, rawQuery: raw.rawQuery.replace('image%2Fpng', 'text%2Fhtml') },
      { ...raw, rawQuery: `${raw.rawQuery}&x-id=DeleteObject` },
      withHeader(raw, 'host', 'evil.test'),
    ];
    for (const request of tampered)
      await s3Error(verifySigV4(request, lookup, at(0)), 'SignatureDoesNotMatch');
    await s3Error(
      verifySigV4(raw, async () => 'wrong', at(0)),
      'SignatureDoesNotMatch',
    );
  });

  it('AuthorizationQueryParametersError for X-Amz-Expires over a week, or not a number', async () => {
    const raw = await presigned({});
    for (const expires of ['604801', '0', '-1', '1e3', '']) {
      const query = raw.rawQuery.replace('X-Amz-Expires=3600', `X-Amz-Expires=${expires}`);
      const err = await s3Error(
        verifySigV4({ ...raw, rawQuery: query }, lookup, at(0)),
        'AuthorizationQueryParametersError',
      );
      expect(err.status).toBe(400);
    }
  });

  it('AuthorizationQueryParametersError for a missing, repeated or malformed parameter, or another region', async () => {
    const raw = await presigned({});
    const broken = [
      raw.rawQuery.replace(/X-Amz-Date=[^&]*&?/, ''),
      `${raw.rawQuery}&X-Amz-Signature=${'0'.repeat(64)}`,
      raw.rawQuery.replace('X-Amz-Algorithm=AWS4-HMAC-SHA256', 'X-Amz-Algorithm=AWS4-HMAC-SHA512'),
      raw.rawQuery.replace(/X-Amz-Date=\w+/, 'X-Amz-Date=2026-12-05T10%3A00%3A00Z'),
      raw.rawQuery.replace('%2Fus-east-1%2F', '%2Feu-west-1%2F'),
      raw.rawQuery.replace('X-Amz-SignedHeaders=host', 'X-Amz-SignedHeaders=range'),
    ];
    for (const rawQuery of broken)
      await s3Error(
        verifySigV4({ ...raw, rawQuery }, lookup, at(0)),
        'AuthorizationQueryParametersError',
      );
  });

  it('InvalidArgument for both an Authorization header and a presigned query; InvalidToken for a session token', async () => {
    const raw = await presigned({});
    const both = withHeader(raw, 'authorization', authorization(await signed({})));
    await s3Error(verifySigV4(both, lookup, at(0)), 'InvalidArgument');
    const token = await presigned(
      {},
      { signer: s3Signer({ credentials: { ...CREDENTIALS, sessionToken: 'tok' } }) },
    );
    await s3Error(verifySigV4(token, lookup, at(0)), 'InvalidToken');
  });

  it('InvalidRequest for a SigV2 presigned URL (aws s3 presign without signature_version s3v4)', async () => {
    const raw: RawRequest = {
      method: 'GET',
      rawPath: '/photos/a.jpg',
      rawQuery:
        'AWSAccessKeyId=AKIDTROVE0001&Signature=kXITKrTbaE34Vs1p0kGxVw5nsP8%3D&Expires=1796520057',
      headers: { host: HOST },
    };
    const err = await s3Error(verifySigV4(raw, lookup, at(0)), 'InvalidRequest');
    expect(err.message).toContain('AWS4-HMAC-SHA256');
  });
});

/**
 * The worked examples of the S3 API reference, "Signature Calculations for
 * the Authorization Header" and "Authenticating Requests: Using Query
 * Parameters": each request and signature as published.
 */
describe('verifySigV4, AWS published examples', () => {
  const secret = async (id: string) =>
    id === 'AKIAIOSFODNN7EXAMPLE' ? 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' : undefined;
  const options = { now: () => Date.parse('2013-05-24T00:00:00Z') };
  const header = (signedHeaders: string, signature: string) =>
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,' +
    `SignedHeaders=${signedHeaders},Signature=${signature}`;
  const common = {
    host: 'examplebucket.s3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-content-sha256': EMPTY_SHA256,
  };

  it('GET Object (a Range header)', async () => {
    const raw: RawRequest = {
      method: 'GET',
      rawPath: '/test.txt',
      rawQuery: '',
      headers: {
        ...common,
        range: 'bytes=0-9',
        authorization: header(
          'host;range;x-amz-content-sha256;x-amz-date',
          'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
        ),
      },
    };
    await expect(verifySigV4(raw, secret, options)).resolves.toBeDefined();
    await s3Error(
      verifySigV4(withHeader(raw, 'range', 'bytes=0-10'), secret, options),
      'SignatureDoesNotMatch',
    );
  });

  it('PUT Object (an encoded path, a Date header, a storage class)', async () => {
    const raw: RawRequest = {
      method: 'PUT',
      rawPath: '/test%24file.text',
      rawQuery: '',
      headers: {
        ...common,
        date: 'Fri, 24 May 2013 00:00:00 GMT',
        'x-amz-storage-class': 'REDUCED_REDUNDANCY',
        'x-amz-content-sha256': createHash('sha256').update('Welcome to Amazon S3.').digest('hex'),
        authorization: header(
          'date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class',
          '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd',
        ),
      },
    };
    await expect(verifySigV4(raw, secret, options)).resolves.toBeDefined();
  });

  it('GET Bucket Lifecycle and List Objects (a valueless and a two-parameter query)', async () => {
    const cases = [
      ['lifecycle', 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543'],
      ['max-keys=2&prefix=J', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'],
    ] as const;
    for (const [rawQuery, signature] of cases) {
      const raw: RawRequest = {
        method: 'GET',
        rawPath: '/',
        rawQuery,
        headers: {
          ...common,
          authorization: header('host;x-amz-content-sha256;x-amz-date', signature),
        },
      };
      await expect(verifySigV4(raw, secret, options)).resolves.toBeDefined();
    }
  });

  it('a presigned GET Object, valid for 24 hours', async () => {
    const raw: RawRequest = {
      method: 'GET',
      rawPath: '/test.txt',
      rawQuery:
        'X-Amz-Algorithm=AWS4-HMAC-SHA256' +
        '&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request' +
        '&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host' +
        '&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
      headers: { host: 'examplebucket.s3.amazonaws.com' },
    };
    await expect(verifySigV4(raw, secret, options)).resolves.toMatchObject({
      payloadHash: 'UNSIGNED-PAYLOAD',
      expiresAt: Date.parse('2013-05-25T00:00:00Z'),
    });
  });
});

describe('checkContentSha256', () => {
  it('accepts a sha256 hex digest and the named forms', () => {
    for (const value of [
      EMPTY_SHA256,
      EMPTY_SHA256.toUpperCase(),
      'UNSIGNED-PAYLOAD',
      'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
      'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    ])
      expect(checkContentSha256(value)).toBe(value);
  });

  it('refuses anything else with 400 InvalidArgument', () => {
    for (const value of [
      '',
      'unsigned-payload',
      EMPTY_SHA256.slice(1),
      `${EMPTY_SHA256}0`,
      'STREAMING-UNSIGNED-PAYLOAD',
    ]) {
      expect(() => checkContentSha256(value)).toThrow(
        expect.objectContaining({ code: 'InvalidArgument', status: 400 }),
      );
    }
  });
});

describe('SigningKeyCache', () => {
  it('derives the SDK signing key, evicting the least recently used past its capacity', async () => {
    const cache = new SigningKeyCache(2);
    const key = (date: string, secret = CREDENTIALS.secretAccessKey) =>
      cache.get(secret, date, 'us-east-1', 's3');
    const first = key('20261205');
    expect(first.key).toEqual(
      Buffer.from(await getSigningKey(NodeSha256, CREDENTIALS, '20261205', 'us-east-1', 's3')),
    );
    const second = key('20261206');
    expect(key('20261205')).toBe(first);
    key('20261207');
    // 20261206 was the least recently used: evicted (derived anew), 20261205 kept.
    expect(key('20261205')).toBe(first);
    const again = key('20261206');
    expect(again).not.toBe(second);
    expect(again.key).toEqual(second.key);
    expect(key('20261205', 'another secret').key).not.toEqual(first.key);
  });
});

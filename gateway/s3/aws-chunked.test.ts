import { createHash, createHmac, randomBytes, type BinaryLike } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Crc32 } from '@aws-crypto/crc32';
import {
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { SignatureV4, getSigningKey } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AwsChunkedDecoder,
  MAX_CHUNK_BYTES,
  type StreamingMode,
  type StreamingSignature,
} from './aws-chunked.js';
import { bodyDecoder } from './body-decoder.js';
import { ChecksumVerifier } from './checksums.js';
import { S3Error } from './s3-errors.js';

// ---------------------------------------------------------------- helpers

const sha256 = (data: BinaryLike) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest('hex');
const b64 = (digest: Buffer | Uint8Array) => Buffer.from(digest).toString('base64');

/** A deterministic PRNG (mulberry32), so a failing random split can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function split(buf: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) pieces.push(buf.subarray(i, i + size));
  return pieces;
}

function randomSplit(buf: Buffer, seed: number, max = 300): Buffer[] {
  const rand = prng(seed);
  const pieces: Buffer[] = [];
  for (let i = 0; i < buf.length;) {
    const n = 1 + Math.floor(rand() * max);
    pieces.push(buf.subarray(i, i + n));
    i += n;
  }
  return pieces;
}

/** The ways a body is cut into the buffers the decoder receives. */
const feeds: [string, (buf: Buffer) => Buffer[]][] = [
  ['whole', (buf) => [buf]],
  ['1-byte', (buf) => split(buf, 1)],
  ['7-byte', (buf) => split(buf, 7)],
  ['random', (buf) => randomSplit(buf, 42)],
];

/** Runs `pieces` through the stage bodyDecoder picks for `headers`. */
async function decode(
  headers: IncomingHttpHeaders,
  pieces: Iterable<Buffer>,
  signing?: StreamingSignature,
): Promise<{ out: Buffer; error: unknown }> {
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      received.push(chunk);
      done();
    },
  });
  const stage = bodyDecoder(headers, signing) ?? new PassThrough();
  const error = await pipeline(Readable.from(pieces), stage, sink).then(
    () => undefined,
    (err: unknown) => err,
  );
  return { out: Buffer.concat(received), error };
}

function flip(buf: Buffer, at: number): void {
  buf.writeUInt8(buf.readUInt8(at) ^ 1, at);
}

function expectS3Error(error: unknown, code: string, status: number, message?: RegExp): void {
  expect(error).toBeInstanceOf(S3Error);
  expect(error).toMatchObject({ code, status });
  if (message) expect((error as Error).message).toMatch(message);
}

// ------------------------------------------- signing: a client's side, from the spec

/** The hash class @smithy/signature-v4 takes, on node:crypto. */
class Sha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

const credentials = { accessKeyId: 'AKIDTROVE', secretAccessKey: 'trove/secret/key' };

/** What sigv4.ts will hand over: the SDK's signer signs a streaming PUT; its signature is the seed. */
async function signedRequest(mode: StreamingMode, length: number): Promise<StreamingSignature> {
  const signer = new SignatureV4({
    credentials,
    region: 'us-east-1',
    service: 's3',
    sha256: Sha256,
  });
  const signed = await signer.sign({
    method: 'PUT',
    protocol: 'http:',
    hostname: '127.0.0.1',
    path: '/bucket/key',
    query: {},
    headers: {
      host: '127.0.0.1',
      'content-encoding': 'aws-chunked',
      'x-amz-content-sha256': mode,
      'x-amz-decoded-content-length': String(length),
    },
  });
  const amzDate = signed.headers['x-amz-date']!;
  const date = amzDate.slice(0, 8);
  const key = await getSigningKey(Sha256, credentials, date, 'us-east-1', 's3');
  return {
    signingKey: Buffer.from(key),
    scope: `${date}/us-east-1/s3/aws4_request`,
    amzDate,
    signature: /Signature=([0-9a-f]{64})/.exec(signed.headers['authorization']!)![1]!,
  };
}

function chunkSignature(s: StreamingSignature, previous: string, data: Buffer): string {
  const toSign = [
    'AWS4-HMAC-SHA256-PAYLOAD',
    s.amzDate,
    s.scope,
    previous,
    sha256(''),
    sha256(data),
  ];
  return hmac(s.signingKey, toSign.join('\n'));
}

function trailerSignature(s: StreamingSignature, previous: string, canonical: string): string {
  const toSign = ['AWS4-HMAC-SHA256-TRAILER', s.amzDate, s.scope, previous, sha256(canonical)];
  return hmac(s.signingKey, toSign.join('\n'));
}

/** An aws-chunked encoder written from AWS's description of the format, signed when given a signing. */
function encode(
  data: Buffer,
  chunkSize: number,
  opts: { signing?: StreamingSignature; trailer?: [name: string, value: string] } = {},
): Buffer {
  const { signing, trailer } = opts;
  let previous = signing?.signature ?? '';
  const header = (piece: Buffer) => {
    if (!signing) return `${piece.length.toString(16)}\r\n`;
    previous = chunkSignature(signing, previous, piece);
    return `${piece.length.toString(16)};chunk-signature=${previous}\r\n`;
  };
  const parts: (string | Buffer)[] = [];
  for (const piece of split(data, chunkSize)) parts.push(header(piece), piece, '\r\n');
  parts.push(header(Buffer.alloc(0)));
  if (trailer) {
    const line = `${trailer[0]}:${trailer[1]}`;
    parts.push(`${line}\r\n`);
    if (signing) {
      parts.push(`x-amz-trailer-signature:${trailerSignature(signing, previous, `${line}\n`)}\r\n`);
    }
  }
  parts.push('\r\n');
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
}

/** The base64 CRC32 by another implementation than the decoder's (zlib). */
function crc32Of(data: Buffer): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(new Crc32().update(data).digest() >>> 0);
  return out.toString('base64');
}

function headersFor(
  mode: StreamingMode,
  decodedLength: number,
  trailer?: string,
): IncomingHttpHeaders {
  return {
    'content-encoding': 'aws-chunked',
    'x-amz-content-sha256': mode,
    'x-amz-decoded-content-length': String(decodedLength),
    ...(trailer ? { 'x-amz-trailer': trailer } : {}),
  };
}

// ------------------------------------------------------------------ tests

describe('the test encoder against AWS published examples', () => {
  // AWS's "Transferring payload in multiple chunks" example: 66560 bytes of 'a', 64 KiB chunks.
  const example: StreamingSignature = {
    signingKey: Buffer.alloc(0),
    scope: '20130524/us-east-1/s3/aws4_request',
    amzDate: '20130524T000000Z',
    signature: '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
  };
  const published = [
    'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
    '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
    'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
  ];
  const exampleData = Buffer.alloc(66560, 'a');

  beforeAll(async () => {
    const key = await getSigningKey(
      Sha256,
      {
        accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      },
      '20130524',
      'us-east-1',
      's3',
    );
    example.signingKey = Buffer.from(key);
  });

  it('signs chunks as AWS does', () => {
    const encoded = encode(exampleData, 65536, { signing: example }).toString('latin1');
    const signatures = [...encoded.matchAll(/chunk-signature=([0-9a-f]{64})/g)].map((m) => m[1]);
    expect(signatures).toEqual(published);
  });

  it('signs a trailer as the AWS CRT does', () => {
    // aws-crt-swift's ChunkSignerTests: trailers first:1st, second:2nd, third:3rd after the example.
    const canonical = 'first:1st\nsecond:2nd\nthird:3rd\n';
    expect(trailerSignature(example, published[2]!, canonical)).toBe(
      'df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c',
    );
  });

  for (const [feed, cut] of feeds) {
    it(`decodes AWS's example body, built from its published signatures (${feed})`, async () => {
      const body = Buffer.concat([
        Buffer.from(`10000;chunk-signature=${published[0]}\r\n`),
        exampleData.subarray(0, 65536),
        Buffer.from(`\r\n400;chunk-signature=${published[1]}\r\n`),
        exampleData.subarray(65536),
        Buffer.from(`\r\n0;chunk-signature=${published[2]}\r\n\r\n`),
      ]);
      const headers = headersFor('STREAMING-AWS4-HMAC-SHA256-PAYLOAD', exampleData.length);
      const { out, error } = await decode(headers, cut(body), example);
      expect(error).toBeUndefined();
      expect(out.equals(exampleData)).toBe(true);
    });
  }
});

describe('signed aws-chunked bodies', () => {
  const mode = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
  const trailerMode = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
  const data = randomBytes(20_000);
  let signing: StreamingSignature;
  let trailerSigning: StreamingSignature;

  beforeAll(async () => {
    signing = await signedRequest(mode, data.length);
    trailerSigning = await signedRequest(trailerMode, data.length);
  });

  for (const [feed, cut] of feeds) {
    for (const chunkSize of [4096, 999]) {
      it(`decodes and verifies ${chunkSize}-byte chunks (${feed})`, async () => {
        const body = encode(data, chunkSize, { signing });
        const { out, error } = await decode(headersFor(mode, data.length), cut(body), signing);
        expect(error).toBeUndefined();
        expect(out.equals(data)).toBe(true);
      });

      it(`decodes and verifies ${chunkSize}-byte chunks with a signed crc32 trailer (${feed})`, async () => {
        const trailer: [string, string] = ['x-amz-checksum-crc32', crc32Of(data)];
        const body = encode(data, chunkSize, { signing: trailerSigning, trailer });
        const headers = headersFor(trailerMode, data.length, 'x-amz-checksum-crc32');
        const { out, error } = await decode(headers, cut(body), trailerSigning);
        expect(error).toBeUndefined();
        expect(out.equals(data)).toBe(true);
      });
    }
  }

  it('decodes an empty body, with and without a trailer', async () => {
    const empty = Buffer.alloc(0);
    const plain = await decode(headersFor(mode, 0), [encode(empty, 10, { signing })], signing);
    expect(plain.error).toBeUndefined();
    expect(plain.out.length).toBe(0);
    const trailer: [string, string] = ['x-amz-checksum-sha256', b64(createHash('sha256').digest())];
    const body = encode(empty, 10, { signing: trailerSigning, trailer });
    const headers = headersFor(trailerMode, 0, 'x-amz-checksum-sha256');
    const withTrailer = await decode(headers, [body], trailerSigning);
    expect(withTrailer.error).toBeUndefined();
    expect(withTrailer.out.length).toBe(0);
  });

  it('refuses a tampered data byte with 403 at the end of its chunk, before the stream ends', async () => {
    const body = encode(data, 4096, { signing });
    const firstData = body.indexOf('\r\n') + 2;
    flip(body, firstData + 4096 + 200); // in the second chunk's data
    const { out, error } = await decode(headersFor(mode, data.length), split(body, 1000), signing);
    expectS3Error(error, 'SignatureDoesNotMatch', 403, /chunk 2/);
    expect(out.length).toBeLessThanOrEqual(2 * 4096);
  });

  it('refuses a tampered chunk signature with 403', async () => {
    const body = encode(data, 4096, { signing }).toString('latin1');
    const signatures = [...body.matchAll(/chunk-signature=([0-9a-f]{64})/g)];
    const third = signatures[2]!;
    const at = third.index! + 'chunk-signature='.length;
    const flipped = body.slice(0, at) + (body[at] === '0' ? '1' : '0') + body.slice(at + 1);
    const { error } = await decode(
      headersFor(mode, data.length),
      [Buffer.from(flipped, 'latin1')],
      signing,
    );
    expectS3Error(error, 'SignatureDoesNotMatch', 403, /chunk 3/);
  });

  it('refuses chunks signed with another seed, or reordered', async () => {
    const other = { ...signing, signature: sha256('another request') };
    const foreign = await decode(
      headersFor(mode, data.length),
      [encode(data, 4096, { signing: other })],
      signing,
    );
    expectS3Error(foreign.error, 'SignatureDoesNotMatch', 403, /chunk 1/);
    // The same chunks, the second and third swapped: each is validly signed, but not in that chain.
    const sixteen = Buffer.alloc(16384, 'x');
    sixteen.fill('y', 4096, 8192);
    const chunks = encode(sixteen, 4096, { signing })
      .toString('latin1')
      .split(/(?<=\r\n)(?=[0-9a-f]+;chunk-signature)/);
    const swapped = [chunks[0], chunks[2], chunks[1], ...chunks.slice(3)].join('');
    const reordered = await decode(
      headersFor(mode, sixteen.length),
      [Buffer.from(swapped, 'latin1')],
      signing,
    );
    expectS3Error(reordered.error, 'SignatureDoesNotMatch', 403, /chunk 2/);
  });

  it('refuses a signed chunk header without a signature', async () => {
    const { error } = await decode(
      headersFor(mode, 5),
      [Buffer.from('5\r\nhello\r\n0\r\n\r\n')],
      signing,
    );
    expectS3Error(error, 'InvalidRequest', 400, /chunk-signature/);
  });

  it('refuses a wrong trailing checksum, correctly signed, with 400 BadDigest', async () => {
    const trailer: [string, string] = ['x-amz-checksum-crc32', crc32Of(Buffer.from('other'))];
    const body = encode(data, 4096, { signing: trailerSigning, trailer });
    const headers = headersFor(trailerMode, data.length, 'x-amz-checksum-crc32');
    const { error } = await decode(headers, [body], trailerSigning);
    expectS3Error(error, 'BadDigest', 400);
  });

  it('refuses a trailer changed after signing, or a tampered trailer signature, with 403', async () => {
    const trailer: [string, string] = ['x-amz-checksum-crc32', crc32Of(data)];
    const headers = headersFor(trailerMode, data.length, 'x-amz-checksum-crc32');
    const body = encode(data, 4096, { signing: trailerSigning, trailer }).toString('latin1');
    const changed = body.replace(crc32Of(data), crc32Of(Buffer.from('other')));
    const a = await decode(headers, [Buffer.from(changed, 'latin1')], trailerSigning);
    expectS3Error(a.error, 'SignatureDoesNotMatch', 403, /trailer/);
    const forged = body.replace(
      /(x-amz-trailer-signature:)([0-9a-f])/,
      (_m, name: string, c: string) => name + (c === 'a' ? 'b' : 'a'),
    );
    const b = await decode(headers, [Buffer.from(forged, 'latin1')], trailerSigning);
    expectS3Error(b.error, 'SignatureDoesNotMatch', 403, /trailer/);
  });

  it('refuses a trailer without its signature', async () => {
    const trailer: [string, string] = ['x-amz-checksum-crc32', crc32Of(data)];
    const headers = headersFor(trailerMode, data.length, 'x-amz-checksum-crc32');
    const body = encode(data, 4096, { signing: trailerSigning, trailer }).toString('latin1');
    const unsigned = body.replace(/x-amz-trailer-signature:[0-9a-f]+\r\n/, '');
    const { error } = await decode(headers, [Buffer.from(unsigned, 'latin1')], trailerSigning);
    expectS3Error(error, 'MalformedTrailerError', 400, /x-amz-trailer-signature/);
  });

  it('verifies a checksum header sent with signed chunks', async () => {
    const body = encode(data, 4096, { signing });
    const headers = { ...headersFor(mode, data.length), 'x-amz-checksum-crc32': crc32Of(data) };
    expect((await decode(headers, [body], signing)).error).toBeUndefined();
    headers['x-amz-checksum-crc32'] = crc32Of(Buffer.from('other'));
    expectS3Error((await decode(headers, [body], signing)).error, 'BadDigest', 400);
  });

  it('fails on every truncation of the body, never ending as a short object', async () => {
    const small = data.subarray(0, 300);
    const body = encode(small, 100, { signing });
    for (let cut = 0; cut < body.length; cut++) {
      const { error } = await decode(
        headersFor(mode, small.length),
        [body.subarray(0, cut)],
        signing,
      );
      expect(error, `cut at ${cut}`).toBeInstanceOf(S3Error);
    }
  });
});

describe('bodies sent by @aws-sdk/client-s3', () => {
  let server: Server;
  let client: S3Client;
  let last: { headers: IncomingHttpHeaders; body: Buffer } | undefined;
  const data = randomBytes(300_000);

  beforeAll(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (chunk: Buffer) => parts.push(chunk));
      req.on('end', () => {
        last = { headers: req.headers, body: Buffer.concat(parts) };
        res.writeHead(200, { etag: '"etag"' }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new S3Client({
      region: 'us-east-1',
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      forcePathStyle: true,
      credentials,
      requestChecksumCalculation: 'WHEN_SUPPORTED',
    });
  });

  afterAll(async () => {
    client.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  /** What the SDK sends for a PutObject: its headers and raw body, as a server receives them. */
  async function put(input: Partial<PutObjectCommandInput>) {
    last = undefined;
    await client.send(new PutObjectCommand({ Bucket: 'bucket', Key: 'key', ...input }));
    return last!;
  }

  /** A stream body, in `size`-byte buffers: the SDK makes a chunk of each. */
  const stream = (buf: Buffer, size = 65536) => Readable.from(split(buf, size));

  it('sends a stream as STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer', async () => {
    const sent = await put({ Body: stream(data), ContentLength: data.length });
    expect(sent.headers).toMatchObject({
      'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      'x-amz-trailer': 'x-amz-checksum-crc32',
      'x-amz-decoded-content-length': String(data.length),
      'content-encoding': 'aws-chunked',
    });
    expect(sent.body.toString('latin1')).toContain(
      `\r\n0\r\nx-amz-checksum-crc32:${crc32Of(data)}\r\n\r\n`,
    );
    for (const [feed, cut] of feeds.filter(([name]) => name !== '1-byte')) {
      const { out, error } = await decode(sent.headers, cut(sent.body));
      expect(error, feed).toBeUndefined();
      expect(out.equals(data), feed).toBe(true);
    }
  });

  it('decodes the SDK framing fed a byte at a time', async () => {
    const small = data.subarray(0, 5000);
    const sent = await put({ Body: stream(small, 333), ContentLength: small.length });
    const { out, error } = await decode(sent.headers, split(sent.body, 1));
    expect(error).toBeUndefined();
    expect(out.equals(small)).toBe(true);
  });

  for (const algorithm of ['CRC32C', 'SHA1', 'SHA256'] as const) {
    it(`verifies a ${algorithm} trailer`, async () => {
      const sent = await put({
        Body: stream(data),
        ContentLength: data.length,
        ChecksumAlgorithm: algorithm,
      });
      expect(sent.headers['x-amz-trailer']).toBe(`x-amz-checksum-${algorithm.toLowerCase()}`);
      const { out, error } = await decode(sent.headers, randomSplit(sent.body, 7, 70_000));
      expect(error).toBeUndefined();
      expect(out.equals(data)).toBe(true);
      // A flipped data byte the checksum must catch: nothing signs the data of this mode.
      const tampered = Buffer.from(sent.body);
      flip(tampered, tampered.indexOf('\r\n') + 1000);
      expectS3Error((await decode(sent.headers, [tampered])).error, 'BadDigest', 400);
    });
  }

  it('sends an UploadPart stream the same way', async () => {
    last = undefined;
    await client.send(
      new UploadPartCommand({
        Bucket: 'bucket',
        Key: 'key',
        UploadId: 'u',
        PartNumber: 1,
        Body: stream(data),
        ContentLength: data.length,
      }),
    );
    const { out, error } = await decode(last!.headers, [last!.body]);
    expect(error).toBeUndefined();
    expect(out.equals(data)).toBe(true);
  });

  it('decodes an empty stream', async () => {
    const sent = await put({ Body: Readable.from([]), ContentLength: 0 });
    expect(sent.headers['x-amz-content-sha256']).toBe('STREAMING-UNSIGNED-PAYLOAD-TRAILER');
    const { out, error } = await decode(sent.headers, [sent.body]);
    expect(error).toBeUndefined();
    expect(out.length).toBe(0);
  });

  it('makes one chunk of each buffer of the stream, however large', async () => {
    const sent = await put({ Body: Readable.from([data]), ContentLength: data.length });
    expect(sent.body.toString('latin1', 0, sent.body.indexOf('\r\n'))).toBe(
      data.length.toString(16),
    );
  });

  it('passes a chunk on as it arrives, without holding it', async () => {
    const sent = await put({ Body: Readable.from([data]), ContentLength: data.length });
    const decoder = bodyDecoder(sent.headers)!;
    decoder.write(sent.body.subarray(0, 100_000));
    const headerLength = sent.body.indexOf('\r\n') + 2;
    expect((decoder.read() as Buffer).equals(data.subarray(0, 100_000 - headerLength))).toBe(true);
    decoder.destroy();
  });

  it('refuses a wrong trailing checksum with 400 BadDigest', async () => {
    const sent = await put({ Body: stream(data), ContentLength: data.length });
    const wrong = sent.body
      .toString('latin1')
      .replace(crc32Of(data), crc32Of(Buffer.from('other')));
    const { error } = await decode(sent.headers, [Buffer.from(wrong, 'latin1')]);
    expectS3Error(error, 'BadDigest', 400);
  });

  it('fails on every truncation of the body', async () => {
    const small = data.subarray(0, 100);
    const sent = await put({ Body: stream(small, 30), ContentLength: small.length });
    for (let cut = 0; cut < sent.body.length; cut++) {
      const { error } = await decode(sent.headers, [sent.body.subarray(0, cut)]);
      expect(error, `cut at ${cut}`).toBeInstanceOf(S3Error);
    }
  });

  it('refuses a body that is not its x-amz-decoded-content-length, passing no byte beyond it', async () => {
    const sent = await put({ Body: stream(data), ContentLength: data.length });
    const longer = await decode(
      { ...sent.headers, 'x-amz-decoded-content-length': String(data.length + 1) },
      [sent.body],
    );
    expectS3Error(longer.error, 'IncompleteBody', 400, /is 300000 bytes/);
    const shorter = await decode({ ...sent.headers, 'x-amz-decoded-content-length': '100000' }, [
      sent.body,
    ]);
    expectS3Error(shorter.error, 'IncompleteBody', 400, /longer than/);
    expect(shorter.out.length).toBeLessThanOrEqual(100_000);
  });

  it('sends a buffer as a plain body with an x-amz-checksum-crc32 header, verified in passing', async () => {
    const sent = await put({ Body: data });
    expect(sent.headers['x-amz-checksum-crc32']).toBe(crc32Of(data));
    expect(sent.headers['content-encoding']).toBeUndefined();
    expect(bodyDecoder(sent.headers)).toBeInstanceOf(ChecksumVerifier);
    const { out, error } = await decode(sent.headers, randomSplit(sent.body, 3, 10_000));
    expect(error).toBeUndefined();
    expect(out.equals(data)).toBe(true);
    const tampered = Buffer.from(sent.body);
    flip(tampered, 12345);
    expectS3Error((await decode(sent.headers, [tampered])).error, 'BadDigest', 400);
  });

  it('verifies SHA1 and SHA256 checksum headers of a plain body', async () => {
    for (const algorithm of ['SHA1', 'SHA256'] as const) {
      const sent = await put({ Body: 'hello, trove', ChecksumAlgorithm: algorithm });
      expect(sent.headers[`x-amz-checksum-${algorithm.toLowerCase()}`]).toBeDefined();
      expect((await decode(sent.headers, [sent.body])).error).toBeUndefined();
      expectS3Error(
        (await decode(sent.headers, [Buffer.from('hello, trovE')])).error,
        'BadDigest',
        400,
      );
    }
  });
});

describe('framing errors', () => {
  const unsigned = (length: number, trailer = 'x-amz-checksum-crc32') =>
    headersFor('STREAMING-UNSIGNED-PAYLOAD-TRAILER', length, trailer);
  const ok = (data: string) =>
    `${data.length.toString(16)}\r\n${data}\r\n0\r\nx-amz-checksum-crc32:${crc32Of(Buffer.from(data))}\r\n\r\n`;
  const fails = async (body: string, code: string, message: RegExp) => {
    const { error } = await decode(unsigned(5), split(Buffer.from(body, 'latin1'), 3));
    expectS3Error(error, code, 400, message);
  };

  it('accepts the well-formed body the other cases alter', async () => {
    const { out, error } = await decode(unsigned(5), [Buffer.from(ok('hello'))]);
    expect(error).toBeUndefined();
    expect(out.toString()).toBe('hello');
  });

  it('refuses a bad chunk size', () =>
    fails(ok('hello').replace(/^5/, 'zz'), 'InvalidRequest', /bad chunk size "zz"/));
  it('refuses a line ended by LF alone', () =>
    fails(ok('hello').replace('5\r\n', '5\n'), 'InvalidRequest', /CRLF/));
  it('refuses chunk data longer than announced', () =>
    fails(ok('hello').replace(/^5/, '4'), 'InvalidRequest', /longer than its header/));
  it('refuses bytes after the end', () =>
    fails(`${ok('hello')}x`, 'InvalidRequest', /after the end/));
  it('refuses a chunk extension in an unsigned body', () =>
    fails(ok('hello').replace(/^5/, '5;ext=1'), 'InvalidRequest', /chunk extension/));
  it('refuses an undeclared trailer', () =>
    fails(
      ok('hello').replace('\r\n\r\n', '\r\nx-other:1\r\n\r\n'),
      'MalformedTrailerError',
      /unexpected trailer/,
    ));
  it('refuses a missing trailer', () =>
    fails(
      ok('hello').replace(/x-amz-checksum-crc32:.*\r\n/, ''),
      'MalformedTrailerError',
      /no x-amz-checksum-crc32/,
    ));
  it('refuses a repeated trailer', () =>
    fails(
      ok('hello').replace(/(x-amz-checksum-crc32:.*\r\n)/, '$1$1'),
      'MalformedTrailerError',
      /unexpected trailer/,
    ));
  it('refuses a trailing checksum of the wrong size', () =>
    fails(
      ok('hello').replace(/crc32:.*\r\n/, 'crc32:AAAA\r\n'),
      'InvalidRequest',
      /not a valid crc32/,
    ));
  it('refuses a trailer in a mode without one', async () => {
    const signing = await signedRequest('STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 0);
    const body = encode(Buffer.alloc(0), 10, { signing }).toString('latin1');
    const withTrailer = body.replace(/\r\n\r\n$/, '\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n');
    const headers = headersFor('STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 0);
    const { error } = await decode(headers, [Buffer.from(withTrailer, 'latin1')], signing);
    expectS3Error(error, 'MalformedTrailerError', 400, /unexpected trailer/);
  });

  it('refuses a chunk announcing more than the limit, before its data', async () => {
    const header = `${(MAX_CHUNK_BYTES + 1).toString(16)}\r\n`;
    const { error, out } = await decode(unsigned(MAX_CHUNK_BYTES + 1), [
      Buffer.from(header),
      Buffer.alloc(1000),
    ]);
    expectS3Error(error, 'InvalidRequest', 400, /over the limit/);
    expect(out.length).toBe(0);
    const decoder = new AwsChunkedDecoder({
      mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      maxChunkBytes: 100,
    });
    const small = await pipeline(
      Readable.from([Buffer.from('65\r\n')]),
      decoder,
      new PassThrough(),
    ).catch((err: unknown) => err);
    expectS3Error(small, 'InvalidRequest', 400, /101 bytes, over the limit of 100/);
  });

  it('refuses an endless header line without reading it all', async () => {
    let pulled = 0;
    const endless = (function* () {
      for (; pulled < 1000; pulled++) yield Buffer.alloc(100, '1');
    })();
    const { error } = await decode(unsigned(5), endless);
    expectS3Error(error, 'InvalidRequest', 400, /longer than 4096 bytes/);
    expect(pulled).toBeLessThan(100);
  });
});

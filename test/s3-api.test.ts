/**
 * The S3-compatible API against a real cluster (gateway with S3_PORT, three
 * storage nodes), spoken to with @aws-sdk/client-s3 as users will, plus raw
 * signed requests for what the SDK never sends (a body that is not the one
 * it signed).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketAclCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandOutput,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSigningKey, SignatureV4 } from '@smithy/signature-v4';
import { NodeSha256 } from './node-sha256.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  METADATA_KINDS,
  fixture,
  freePort,
  hashBody,
  jpegStream,
  sha256,
  startCluster,
  type Cluster,
} from './harness.js';
import { createAccessKey as newAccessKey, s3Error, type AccessKey } from './s3-test-client.js';

const ADMIN_TOKEN = 's3-api-test-admin-token';
const REGION = 'us-east-1';
/** Virtual-host style: `<bucket>.s3.test` names the bucket (sent as the Host header; no DNS needed). */
const S3_DOMAIN = 's3.test';

let cluster: Cluster;
let endpoint: string;
let owner: AccessKey;
let s3: S3Client;

const createAccessKey = () => newAccessKey(cluster, ADMIN_TOKEN);

function client(key: AccessKey): S3Client {
  return new S3Client({
    endpoint,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
    // A refusal must be seen as it is, not retried into a timeout.
    maxAttempts: 1,
  });
}

/** A PutObject's output and its response headers (the SDK drops those it does not model: x-trove-*). */
async function putWithHeaders(
  c: S3Client,
  command: PutObjectCommand,
): Promise<{
  output: PutObjectCommandOutput;
  headers: Record<string, string>;
  sent: Record<string, string>;
}> {
  let headers: Record<string, string> = {};
  let sent: Record<string, string> = {};
  command.middlewareStack.add(
    (next) => async (args) => {
      // Signed by now: the headers as they go out.
      sent = { ...(args.request as { headers: Record<string, string> }).headers };
      const result = await next(args);
      headers = (result.response as { headers: Record<string, string> }).headers;
      return result;
    },
    { step: 'deserialize' },
  );
  const output = await c.send(command);
  return { output, headers, sent };
}

const md5 = (bytes: Buffer) => createHash('md5').update(bytes).digest('hex');

async function fileCount(): Promise<number> {
  const [row] = await cluster.query<{ n: number }>('SELECT COUNT(*) AS n FROM files');
  return Number(row!.n);
}

describe.each(METADATA_KINDS)('S3 API (%s metadata)', (metadata) => {
  beforeAll(async () => {
    const s3Port = await freePort();
    endpoint = `http://127.0.0.1:${s3Port}`;
    cluster = await startCluster({
      metadata,
      env: { ADMIN_TOKEN, S3_PORT: String(s3Port), S3_DOMAIN: S3_DOMAIN },
    });
    owner = await createAccessKey();
    s3 = client(owner);
  });

  afterAll(async () => {
    s3?.destroy();
    await cluster?.stop();
  });

  const bucket = 'photos';
  const photo = fixture('photo.jpg');

  it('creates buckets, lists them and answers their location', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    // As S3 in us-east-1: creating a bucket you own again is a success.
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    const list = await s3.send(new ListBucketsCommand({}));
    expect(list.Buckets?.map((b) => b.Name)).toEqual([bucket]);
    const location = await s3.send(new GetBucketLocationCommand({ Bucket: bucket }));
    expect(location.LocationConstraint ?? '').toBe('');
    expect(await s3Error(s3.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })))).toEqual({
      name: 'InvalidBucketName',
      status: 400,
    });
    expect(
      await s3Error(s3.send(new HeadBucketCommand({ Bucket: 'no-such-bucket' }))),
    ).toMatchObject({
      status: 404,
    });
  });

  it('puts a photo and reads it back whole, by range and conditionally', async () => {
    const { output, headers } = await putWithHeaders(
      s3,
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'a/photo.jpg',
        Body: photo,
        Metadata: { 'max-downloads': '5', caption: 'sunset' },
      }),
    );
    expect(output.ETag).toBe(`"${md5(photo)}"`);
    expect(headers['x-trove-file-id']).toMatch(/\S/);
    expect(headers['x-amz-request-id']).toMatch(/\S/);
    // The share link is the file's, on the gateway's port, with the options of the metadata.
    const link = await fetch(headers['x-trove-download-url']!, { method: 'HEAD' });
    expect(link.status).toBe(200);
    expect(link.headers.get('x-downloads-left')).toBe('5');
    expect(headers['x-trove-share-url']).toBe(
      `${cluster.gatewayUrl}/s/${headers['x-trove-file-id']}`,
    );

    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg' }));
    expect(head.ETag).toBe(`"${md5(photo)}"`);
    expect(head.ContentLength).toBe(photo.length);
    expect(head.ContentType).toBe('image/jpeg');
    expect(head.Metadata).toMatchObject({ caption: 'sunset' });
    expect(head.LastModified).toBeInstanceOf(Date);

    const whole = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg' }));
    expect((await hashBody(whole.Body as Readable)).sha256).toBe(sha256(photo));
    const part = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg', Range: 'bytes=100-1099' }),
    );
    expect(part.ContentRange).toBe(`bytes 100-1099/${photo.length}`);
    expect(Buffer.from(await part.Body!.transformToByteArray())).toEqual(photo.subarray(100, 1100));
    expect(
      await s3Error(
        s3.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: 'a/photo.jpg',
            Range: `bytes=${photo.length}-`,
          }),
        ),
      ),
    ).toEqual({ name: 'InvalidRange', status: 416 });
    expect(
      (
        await s3Error(
          s3.send(
            new GetObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg', IfNoneMatch: head.ETag }),
          ),
        )
      ).status,
    ).toBe(304);
    expect(
      await s3Error(
        s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg', IfMatch: '"0000"' })),
      ),
    ).toEqual({ name: 'PreconditionFailed', status: 412 });

    // The owner's reads took none of the link's downloads.
    const after = await fetch(headers['x-trove-download-url']!, { method: 'HEAD' });
    expect(after.headers.get('x-downloads-left')).toBe('5');
  });

  it('streams a 20 MB object in (aws-chunked, CRC32 trailer) and out', async () => {
    const size = 20 * 1024 * 1024;
    const body = jpegStream(size);
    const md5Hash = createHash('md5');
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5Hash.update(chunk);
        done(null, chunk);
      },
    });
    body.stream.pipe(tap);
    const put = await putWithHeaders(
      s3,
      new PutObjectCommand({ Bucket: bucket, Key: 'big/one.jpg', Body: tap, ContentLength: size }),
    );
    // What the SDK sends a stream as: aws-chunked, its CRC32 in a trailer.
    expect(put.sent['x-amz-content-sha256']).toMatch(/^STREAMING-.*-TRAILER$/);
    expect(put.sent['x-amz-trailer']).toBe('x-amz-checksum-crc32');
    expect(put.output.ETag).toBe(`"${md5Hash.digest('hex')}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big/one.jpg' }));
    expect(await hashBody(got.Body as Readable)).toEqual({ sha256: body.digest(), size });
    const tail = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'big/one.jpg', Range: 'bytes=-1000' }),
    );
    expect(tail.ContentLength).toBe(1000);
    expect(tail.ContentRange).toBe(`bytes ${size - 1000}-${size - 1}/${size}`);
  });

  it('keeps UTF-8 keys with spaces, and lists by prefix and delimiter', async () => {
    const key = 'dossier/été 2026/plage ensoleillée.jpg';
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: photo }));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect((await hashBody(got.Body as Readable)).sha256).toBe(sha256(photo));

    const top = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/' }));
    expect(top.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/', 'big/', 'dossier/']);
    expect(top.Contents ?? []).toEqual([]);
    const inner = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: 'dossier/', Delimiter: '/' }),
    );
    expect(inner.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['dossier/été 2026/']);
    const deep = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'dossier/été' }));
    expect(deep.Contents?.map((o) => [o.Key, o.Size, o.ETag])).toEqual([
      [key, photo.length, `"${md5(photo)}"`],
    ]);
    // Pages of one key, by continuation token; and v1 by marker.
    const first = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
    expect(first.IsTruncated).toBe(true);
    const second = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        MaxKeys: 1,
        ContinuationToken: first.NextContinuationToken,
      }),
    );
    expect(second.Contents?.map((o) => o.Key)).toEqual(['big/one.jpg']);
    const v1 = await s3.send(new ListObjectsCommand({ Bucket: bucket, Marker: 'big/one.jpg' }));
    expect(v1.Contents?.map((o) => o.Key)).toEqual([key]);
  });

  it('lets the owner read an object whose share link is used up', async () => {
    const { headers } = await putWithHeaders(
      s3,
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'once.jpg',
        Body: photo,
        Metadata: { 'max-downloads': '1' },
      }),
    );
    expect((await fetch(headers['x-trove-download-url']!)).status).toBe(200);
    expect((await fetch(headers['x-trove-download-url']!)).status).toBe(410);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'once.jpg' }));
    expect((await hashBody(got.Body as Readable)).sha256).toBe(sha256(photo));
  });

  it('tombstones the old file when a key is written again', async () => {
    const first = await putWithHeaders(
      s3,
      new PutObjectCommand({ Bucket: bucket, Key: 'again.jpg', Body: photo }),
    );
    const second = await putWithHeaders(
      s3,
      new PutObjectCommand({ Bucket: bucket, Key: 'again.jpg', Body: photo }),
    );
    expect(second.headers['x-trove-file-id']).not.toBe(first.headers['x-trove-file-id']);
    expect((await fetch(first.headers['x-trove-download-url']!, { method: 'HEAD' })).status).toBe(
      410,
    );
    expect((await fetch(second.headers['x-trove-download-url']!, { method: 'HEAD' })).status).toBe(
      200,
    );
  });

  it('refuses bad share-link options in the metadata', async () => {
    expect(
      await s3Error(
        s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: 'x.jpg',
            Body: photo,
            Metadata: { ttl: 'forever' },
          }),
        ),
      ),
    ).toEqual({ name: 'InvalidArgument', status: 400 });
  });

  it('refuses a body that is not the one signed, and stores nothing', async () => {
    const before = await fileCount();
    const signed = Buffer.from(photo);
    const sent = Buffer.from(photo);
    sent.writeUInt8(sent.readUInt8(sent.length - 10) ^ 0xff, sent.length - 10);
    const res = await signedFetch(owner, 'PUT', `/${bucket}/tampered.jpg`, signed, sent);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('<Code>XAmzContentSHA256Mismatch</Code>');
    expect(await fileCount()).toBe(before);
    expect(
      await s3Error(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'tampered.jpg' }))),
    ).toMatchObject({
      status: 404,
    });
    // The same request with the body it signed is stored.
    const ok = await signedFetch(owner, 'PUT', `/${bucket}/tampered.jpg`, signed, signed);
    expect(ok.status).toBe(200);
    expect(await fileCount()).toBe(before + 1);
  });

  it('refuses an aws-chunked body whose chunk signature does not match with 403, and stores nothing', async () => {
    const before = await fileCount();
    const data = Buffer.concat([photo, randomBytes(200_000)]);
    // The second of four 64 KiB chunks carries a signature other than its own.
    const tampered = await signedChunkedPut(owner, `/${bucket}/chunked.jpg`, data, 1);
    expect(tampered.status).toBe(403);
    expect(tampered.body).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect(await fileCount()).toBe(before);
    // The nodes' write ended with the body: none was left waiting for bytes until it gave up
    // (which took a minute, and marked a healthy node suspect). A second for that line to be written.
    await new Promise((settle) => setTimeout(settle, 1000));
    expect(readFileSync(cluster.proc('gateway')!.logFile, 'utf8')).not.toContain(
      'storage node suspect',
    );
    expect(
      await s3Error(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'chunked.jpg' }))),
    ).toMatchObject({ status: 404 });
    // The same body with every chunk signed as it should be is stored, framing decoded.
    const ok = await signedChunkedPut(owner, `/${bucket}/chunked.jpg`, data);
    expect(ok.status).toBe(200);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'chunked.jpg' }));
    expect(sha256(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha256(data));
  });

  it('refuses a Content-MD5 that does not match, and stores nothing', async () => {
    const before = await fileCount();
    const wrong = createHash('md5').update('other').digest('base64');
    expect(
      await s3Error(
        s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: 'md5.jpg', Body: photo, ContentMD5: wrong }),
        ),
      ),
    ).toEqual({ name: 'BadDigest', status: 400 });
    expect(await fileCount()).toBe(before);
  });

  it('keeps another key out of the bucket, and a wrong secret out of everything', async () => {
    const other = client(await createAccessKey());
    try {
      expect(await s3Error(other.send(new ListObjectsV2Command({ Bucket: bucket })))).toEqual({
        name: 'AccessDenied',
        status: 403,
      });
      expect(
        await s3Error(other.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg' }))),
      ).toEqual({ name: 'AccessDenied', status: 403 });
      expect(await s3Error(other.send(new CreateBucketCommand({ Bucket: bucket })))).toEqual({
        name: 'BucketAlreadyExists',
        status: 409,
      });
      expect((await other.send(new ListBucketsCommand({}))).Buckets ?? []).toEqual([]);
    } finally {
      other.destroy();
    }
    const forged = client({ id: owner.id, secret: randomBytes(30).toString('base64') });
    try {
      expect(await s3Error(forged.send(new ListBucketsCommand({})))).toEqual({
        name: 'SignatureDoesNotMatch',
        status: 403,
      });
    } finally {
      forged.destroy();
    }
    const anonymous = await fetch(`${endpoint}/${bucket}`);
    expect(anonymous.status).toBe(403);
    expect(await anonymous.text()).toContain('<Code>AccessDenied</Code>');
  });

  it('refuses a file type outside ALLOWED_TYPES, and stores nothing', async () => {
    const before = await fileCount();
    const refused = await s3Error(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'notes.txt', Body: 'plain text' })),
    );
    expect(refused).toEqual({ name: 'InvalidRequest', status: 400 });
    expect(await fileCount()).toBe(before);
  });

  it('names the bucket by the Host under S3_DOMAIN (virtual-host style)', async () => {
    const res = await signedHostGet(
      owner,
      `${bucket}.${S3_DOMAIN}`,
      '/',
      'list-type=2&prefix=a%2F',
    );
    expect(res.status).toBe(200);
    expect(res.body).toContain(`<Name>${bucket}</Name>`);
    expect(res.body).toContain('<Key>a/photo.jpg</Key>');
  });

  it('answers 501 NotImplemented to what it does not serve', async () => {
    expect(await s3Error(s3.send(new GetBucketAclCommand({ Bucket: bucket })))).toEqual({
      name: 'NotImplemented',
      status: 501,
    });
  });

  it('deletes one key and many, and a bucket once it is empty', async () => {
    expect(await s3Error(s3.send(new DeleteBucketCommand({ Bucket: bucket })))).toEqual({
      name: 'BucketNotEmpty',
      status: 409,
    });
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg' }));
    // As S3: deleting a key that is not there succeeds.
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg' }));
    expect(
      await s3Error(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/photo.jpg' }))),
    ).toEqual({
      name: 'NoSuchKey',
      status: 404,
    });
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    expect(keys.length).toBeGreaterThan(1);
    const verbose = await s3.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: keys[0]! }] } }),
    );
    expect(verbose.Deleted?.map((d) => d.Key)).toEqual([keys[0]]);
    const quiet = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Quiet: true, Objects: keys.slice(1).map((Key) => ({ Key })) },
      }),
    );
    expect(quiet.Deleted ?? []).toEqual([]);
    expect(quiet.Errors ?? []).toEqual([]);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).KeyCount).toBe(0);
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    expect((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).toEqual([]);
  });

  it('logged no error: every refusal above was an expected S3 answer, not a bug', () => {
    expect(cluster.errorLines('gateway')).toEqual([]);
  });
});

/**
 * A request signed over `signedBody` (its sha256 in x-amz-content-sha256)
 * that sends `sentBody`: what a body altered on the way looks like.
 */
async function signedFetch(
  key: AccessKey,
  method: string,
  path: string,
  signedBody: Buffer,
  sentBody: Buffer,
): Promise<Response> {
  const url = new URL(endpoint);
  const signer = new SignatureV4({
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
    region: REGION,
    service: 's3',
    sha256: NodeSha256,
    uriEscapePath: false,
  });
  const encodedPath = path
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
  const request = await signer.sign({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path: encodedPath,
    query: {},
    headers: {
      host: url.host,
      'content-length': String(sentBody.length),
      'x-amz-content-sha256': sha256(signedBody),
    },
    body: signedBody,
  });
  return fetch(`${endpoint}${encodedPath}`, {
    method,
    headers: request.headers,
    body: sentBody,
  });
}

const CHUNK_BYTES = 64 * 1024;

/**
 * A PutObject with a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body, as AWS
 * describes it: the headers signed (the seed signature), then each 64 KiB
 * chunk signed in a chain from it. The chunk numbered `tamper`, if given,
 * carries the signature of other bytes.
 */
async function signedChunkedPut(
  key: AccessKey,
  path: string,
  data: Buffer,
  tamper?: number,
): Promise<{ status: number; body: string }> {
  const url = new URL(endpoint);
  const credentials = { accessKeyId: key.id, secretAccessKey: key.secret };
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += CHUNK_BYTES)
    chunks.push(data.subarray(at, at + CHUNK_BYTES));
  chunks.push(Buffer.alloc(0));
  const framing = chunks.map((c) => `${c.length.toString(16)};chunk-signature=`.length + 64 + 4);
  const encodedLength = framing.reduce((sum, n, i) => sum + n + chunks[i]!.length, 0);
  const signer = new SignatureV4({
    credentials,
    region: REGION,
    service: 's3',
    sha256: NodeSha256,
  });
  const signed = await signer.sign({
    method: 'PUT',
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path,
    query: {},
    headers: {
      host: url.host,
      'content-encoding': 'aws-chunked',
      'content-length': String(encodedLength),
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'x-amz-decoded-content-length': String(data.length),
    },
  });
  const amzDate = signed.headers['x-amz-date']!;
  const scope = `${amzDate.slice(0, 8)}/${REGION}/s3/aws4_request`;
  const signingKey = Buffer.from(
    await getSigningKey(NodeSha256, credentials, amzDate.slice(0, 8), REGION, 's3'),
  );
  let previous = /Signature=([0-9a-f]{64})/.exec(signed.headers['authorization']!)![1]!;
  const body = chunks.map((chunk, i) => {
    const signedBytes = i === tamper ? Buffer.from('other bytes') : chunk;
    const toSign = [
      'AWS4-HMAC-SHA256-PAYLOAD',
      amzDate,
      scope,
      previous,
      sha256(''),
      sha256(signedBytes),
    ];
    previous = createHmac('sha256', signingKey).update(toSign.join('\n')).digest('hex');
    return Buffer.concat([
      Buffer.from(`${chunk.length.toString(16)};chunk-signature=${previous}\r\n`),
      chunk,
      Buffer.from('\r\n'),
    ]);
  });
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method: 'PUT', path, headers: signed.headers },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (piece: string) => (text += piece));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      },
    );
    req.on('error', reject);
    req.end(Buffer.concat(body));
  });
}

/** A signed GET sent to the S3 port with `host` as its Host header (a name no DNS resolves). */
async function signedHostGet(
  key: AccessKey,
  host: string,
  path: string,
  rawQuery: string,
): Promise<{ status: number; body: string }> {
  const port = Number(new URL(endpoint).port);
  const signer = new SignatureV4({
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
    region: REGION,
    service: 's3',
    sha256: NodeSha256,
    uriEscapePath: false,
  });
  const query = Object.fromEntries(new URLSearchParams(rawQuery));
  const signed = await signer.sign({
    method: 'GET',
    protocol: 'http:',
    hostname: host,
    port,
    path,
    query,
    headers: { host: `${host}:${port}`, 'x-amz-content-sha256': sha256('') },
  });
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: `${path}?${rawQuery}`, headers: signed.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

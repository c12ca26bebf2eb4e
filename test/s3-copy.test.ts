/**
 * CopyObject against a real cluster (gateway with S3_PORT, three storage
 * nodes), with @aws-sdk/client-s3 and aws-cli: a copy is a new Trove file,
 * with its own id, share link and download count, and the source's count is
 * never touched. aws-cli copies an object over 8 MB with UploadPartCopy.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, freePort, hashBody, sha256, startCluster, type Cluster } from './harness.js';
import { awsCli, createAccessKey as newAccessKey, s3Error } from './s3-test-client.js';
import { findOnPath, skipWithout } from './required-tools.js';

const ADMIN_TOKEN = 's3-copy-test-admin-token';
const REGION = 'us-east-1';
const photo = fixture('photo.jpg');
const png = fixture('alpha.png');

const awsMissing = skipWithout(
  'aws',
  findOnPath('aws'),
  'apt-get install -y awscli, or pip install awscli',
);

let cluster: Cluster;
let endpoint: string;
let key: { id: string; secret: string };
let s3: S3Client;

const createAccessKey = () => newAccessKey(cluster, ADMIN_TOKEN);

function client(k: { id: string; secret: string }): S3Client {
  return new S3Client({
    endpoint,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: k.id, secretAccessKey: k.secret },
    maxAttempts: 1,
  });
}

beforeAll(async () => {
  const s3Port = await freePort();
  endpoint = `http://127.0.0.1:${s3Port}`;
  cluster = await startCluster({ env: { ADMIN_TOKEN, S3_PORT: String(s3Port) } });
  key = await createAccessKey();
  s3 = client(key);
  s3.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      lastHeaders = (result.response as { headers: Record<string, string> }).headers;
      return result;
    },
    { step: 'deserialize' },
  );
  for (const Bucket of ['src', 'dst']) await s3.send(new CreateBucketCommand({ Bucket }));
});

afterAll(async () => {
  s3?.destroy();
  await cluster?.stop();
});

/** The response headers of the last request `s3` sent (the SDK's output drops x-trove-*). */
let lastHeaders: Record<string, string> = {};

/** Sends `command` with `s3`; its output and its response headers. */
async function withHeaders<O>(
  send: Promise<O>,
): Promise<{ output: O; headers: Record<string, string> }> {
  const output = await send;
  return { output, headers: lastHeaders };
}

async function bytesOf(Bucket: string, Key: string): Promise<string> {
  const got = await s3.send(new GetObjectCommand({ Bucket, Key }));
  return (await hashBody(got.Body as Readable)).sha256;
}

const md5 = (bytes: Buffer) => `"${createHash('md5').update(bytes).digest('hex')}"`;

describe('S3 CopyObject', () => {
  let sourceFileId: string;
  /** The file of src/b.jpg, the first copy. */
  let copyId: string;

  it('copies within a bucket and across buckets: new files, same bytes, source count untouched', async () => {
    const put = await withHeaders(
      s3.send(
        new PutObjectCommand({
          Bucket: 'src',
          Key: 'a.jpg',
          Body: photo,
          Metadata: { 'max-downloads': '1', caption: 'sunset' },
        }),
      ),
    );
    sourceFileId = put.headers['x-trove-file-id']!;

    const within = await withHeaders(
      s3.send(new CopyObjectCommand({ Bucket: 'src', Key: 'b.jpg', CopySource: 'src/a.jpg' })),
    );
    expect(within.output.CopyObjectResult?.ETag).toBe(md5(photo));
    expect(within.output.CopyObjectResult?.LastModified).toBeInstanceOf(Date);
    copyId = within.headers['x-trove-file-id']!;
    expect(copyId).toMatch(/\S/);
    expect(copyId).not.toBe(sourceFileId);
    expect(within.headers['x-trove-share-url']).toBe(`${cluster.gatewayUrl}/s/${copyId}`);
    expect(within.headers['x-trove-download-url']).toBe(`${cluster.gatewayUrl}/download/${copyId}`);

    const across = await withHeaders(
      s3.send(
        new CopyObjectCommand({ Bucket: 'dst', Key: 'été/a copy.jpg', CopySource: 'src/a.jpg' }),
      ),
    );
    expect(across.headers['x-trove-file-id']).not.toBe(copyId);
    expect(await bytesOf('src', 'b.jpg')).toBe(sha256(photo));
    expect(await bytesOf('dst', 'été/a copy.jpg')).toBe(sha256(photo));

    // The source's one download is still there: copying read it without counting.
    const source = await fetch(`${cluster.gatewayUrl}/download/${sourceFileId}`);
    expect(source.status).toBe(200);
    expect(sha256(Buffer.from(await source.arrayBuffer()))).toBe(sha256(photo));
    expect((await fetch(`${cluster.gatewayUrl}/download/${sourceFileId}`)).status).toBe(410);

    // The copy has its own count, from the metadata it copied (max-downloads 1), and its own link.
    const copy = await fetch(within.headers['x-trove-download-url']!);
    expect(copy.status).toBe(200);
    expect(copy.headers.get('x-downloads-left')).toBe('0');
    await copy.arrayBuffer();
    // A used-up source copies all the same: the owner's read.
    await s3.send(
      new CopyObjectCommand({ Bucket: 'dst', Key: 'again.jpg', CopySource: 'src/a.jpg' }),
    );
    expect(await bytesOf('dst', 'again.jpg')).toBe(sha256(photo));
  });

  it("COPY keeps the source metadata, REPLACE takes the request's", async () => {
    await s3.send(
      new CopyObjectCommand({ Bucket: 'dst', Key: 'copied.jpg', CopySource: '/src/a.jpg' }),
    );
    const copied = await s3.send(new HeadObjectCommand({ Bucket: 'dst', Key: 'copied.jpg' }));
    expect(copied.Metadata).toEqual({ 'max-downloads': '1', caption: 'sunset' });
    expect(copied.ContentType).toBe('image/jpeg');

    const replaced = await withHeaders(
      s3.send(
        new CopyObjectCommand({
          Bucket: 'dst',
          Key: 'replaced.jpg',
          CopySource: 'src/a.jpg',
          MetadataDirective: 'REPLACE',
          Metadata: { 'max-downloads': '3', caption: 'dawn' },
        }),
      ),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'dst', Key: 'replaced.jpg' }));
    expect(head.Metadata).toEqual({ 'max-downloads': '3', caption: 'dawn' });
    const link = await fetch(replaced.headers['x-trove-download-url']!, { method: 'HEAD' });
    expect(link.headers.get('x-downloads-left')).toBe('3');
  });

  it('refuses a copy onto itself without REPLACE, and replaces the file with it', async () => {
    expect(
      await s3Error(
        s3.send(new CopyObjectCommand({ Bucket: 'src', Key: 'b.jpg', CopySource: 'src/b.jpg' })),
      ),
    ).toEqual({ name: 'InvalidRequest', status: 400 });
    const self = await withHeaders(
      s3.send(
        new CopyObjectCommand({
          Bucket: 'src',
          Key: 'b.jpg',
          CopySource: 'src/b.jpg',
          MetadataDirective: 'REPLACE',
          Metadata: { caption: 'renamed' },
        }),
      ),
    );
    expect(self.headers['x-trove-file-id']).not.toBe(copyId);
    // The key's previous file is deleted as an overwritten key's is.
    expect(
      (await fetch(`${cluster.gatewayUrl}/download/${copyId}`, { method: 'HEAD' })).status,
    ).toBe(410);
    expect(await bytesOf('src', 'b.jpg')).toBe(sha256(photo));
    const after = await s3.send(new HeadObjectCommand({ Bucket: 'src', Key: 'b.jpg' }));
    expect(after.Metadata).toEqual({ caption: 'renamed' });
  });

  it("answers 412 to copy-source conditions that fail, 404 NoSuchKey for a missing source, 403 for another key's bucket", async () => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'src', Key: 'a.jpg' }));
    const copy = (extra: Partial<ConstructorParameters<typeof CopyObjectCommand>[0]>) =>
      s3.send(
        new CopyObjectCommand({
          Bucket: 'dst',
          Key: 'cond.jpg',
          CopySource: 'src/a.jpg',
          ...extra,
        }),
      );
    const failed = { name: 'PreconditionFailed', status: 412 };
    expect(
      await s3Error(copy({ MetadataDirective: 'REPLACE', Metadata: { ttl: 'forever' } })),
    ).toEqual({ name: 'InvalidArgument', status: 400 });
    expect(await s3Error(copy({ CopySourceIfMatch: '"0000"' }))).toEqual(failed);
    expect(await s3Error(copy({ CopySourceIfNoneMatch: head.ETag! }))).toEqual(failed);
    expect(
      await s3Error(copy({ CopySourceIfUnmodifiedSince: new Date(Date.now() - 86_400_000) })),
    ).toEqual(failed);
    expect(
      await s3Error(copy({ CopySourceIfModifiedSince: new Date(Date.now() + 86_400_000) })),
    ).toEqual(failed);
    await copy({ CopySourceIfMatch: head.ETag! });
    expect(await bytesOf('dst', 'cond.jpg')).toBe(sha256(photo));

    expect(
      await s3Error(
        s3.send(new CopyObjectCommand({ Bucket: 'dst', Key: 'x.jpg', CopySource: 'src/none.jpg' })),
      ),
    ).toEqual({ name: 'NoSuchKey', status: 404 });

    const other = client(await createAccessKey());
    try {
      await other.send(new CreateBucketCommand({ Bucket: 'theirs' }));
      expect(
        await s3Error(
          other.send(
            new CopyObjectCommand({ Bucket: 'theirs', Key: 'x.jpg', CopySource: 'src/a.jpg' }),
          ),
        ),
      ).toEqual({ name: 'AccessDenied', status: 403 });
    } finally {
      other.destroy();
    }
  });

  it.skipIf(awsMissing)('aws s3 cp s3://b/a s3://b/c copies', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'src', Key: 'cli.png', Body: png }));
    aws(['s3', 'cp', 's3://src/cli.png', 's3://src/cli-copy.png']);
    expect(await bytesOf('src', 'cli-copy.png')).toBe(sha256(png));
  });

  it.skipIf(awsMissing)(
    'aws s3 cp of an object over 8 MB copies it part by part with UploadPartCopy',
    async () => {
      const big = randomBytes(9 * 1024 * 1024);
      big.set([0xff, 0xd8, 0xff, 0xe0], 0);
      await s3.send(new PutObjectCommand({ Bucket: 'src', Key: 'big.jpg', Body: big }));
      const debug = aws(['--debug', 's3', 'cp', 's3://src/big.jpg', 's3://dst/big-copy.jpg']);
      // aws-cli's multipart_threshold and chunk size are both 8 MB: parts of 8 MiB and 1 MiB.
      expect(debug).toMatch(/OperationModel\(name=UploadPartCopy\)/);
      const head = await s3.send(new HeadObjectCommand({ Bucket: 'dst', Key: 'big-copy.jpg' }));
      expect(head.ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
      expect(await bytesOf('dst', 'big-copy.jpg')).toBe(sha256(big));
    },
  );
});

/** aws-cli against the cluster as `key`; its stderr (where --debug writes). */
const aws = (args: string[]): string => awsCli(endpoint, key, args).stderr;

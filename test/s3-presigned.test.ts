/**
 * Presigned URLs against a real cluster (gateway with S3_PORT, three storage
 * nodes): made by @aws-sdk/s3-request-presigner and by `aws s3 presign`,
 * fetched as anyone a link is handed to would. A presigned GET is a share:
 * it counts downloads of the object's file exactly as GET /download does,
 * while the owner's header-signed reads count none.
 */
import type { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  METADATA_KINDS,
  fixture,
  freePort,
  hashBody,
  sha256,
  startCluster,
  type Cluster,
} from './harness.js';
import { awsCli, createAccessKey } from './s3-test-client.js';
import { findOnPath, skipWithout } from './required-tools.js';

const ADMIN_TOKEN = 's3-presigned-test-admin-token';
const REGION = 'us-east-1';
const bucket = 'shared';
const photo = fixture('photo.jpg');

const awsMissing = skipWithout(
  'aws',
  findOnPath('aws'),
  'apt-get install -y awscli, or pip install awscli',
);

describe.each(METADATA_KINDS)('S3 presigned URLs (%s metadata)', (metadata) => {
  let cluster: Cluster;
  let endpoint: string;
  let key: { id: string; secret: string };
  let s3: S3Client;

  beforeAll(async () => {
    const s3Port = await freePort();
    endpoint = `http://127.0.0.1:${s3Port}`;
    cluster = await startCluster({ metadata, env: { ADMIN_TOKEN, S3_PORT: String(s3Port) } });
    key = await createAccessKey(cluster, ADMIN_TOKEN);
    s3 = new S3Client({
      endpoint,
      region: REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
      maxAttempts: 1,
    });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  afterAll(async () => {
    s3?.destroy();
    await cluster?.stop();
  });

  /** Puts `photo` at `objectKey` with these share-link downloads; returns its file id. */
  async function put(objectKey: string, maxDownloads: number): Promise<string> {
    const fileId = await new Promise<string>((resolve, reject) => {
      const command = new PutObjectCommand({
        Bucket: bucket,
        Key: objectKey,
        Body: photo,
        Metadata: { 'max-downloads': String(maxDownloads) },
      });
      command.middlewareStack.add(
        (next) => async (args) => {
          const result = await next(args);
          resolve(
            (result.response as { headers: Record<string, string> }).headers['x-trove-file-id']!,
          );
          return result;
        },
        { step: 'deserialize' },
      );
      s3.send(command).catch(reject);
    });
    expect(fileId).toMatch(/\S/);
    return fileId;
  }

  /** The share link's downloads left, as its native HEAD says (410 once none are left). */
  async function downloadsLeft(fileId: string): Promise<string> {
    const res = await fetch(`${cluster.gatewayUrl}/download/${fileId}`, { method: 'HEAD' });
    return res.status === 410 ? 'gone' : (res.headers.get('x-downloads-left') ?? '');
  }

  const presignGet = (objectKey: string, expiresIn = 300) =>
    getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: objectKey }), { expiresIn });

  it('a presigned GET counts a download each time, then answers 403 AccessDenied; the owner still reads', async () => {
    const fileId = await put('two.jpg', 2);
    const url = await presignGet('two.jpg');
    for (const left of ['1', '0']) {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-downloads-left')).toBe(left);
      expect(res.headers.get('etag')).toMatch(/^"[0-9a-f]{32}"$/);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(photo));
    }
    // The same count as the share link's: it is used up there too.
    expect(await downloadsLeft(fileId)).toBe('gone');

    const refused = await fetch(url);
    expect(refused.status).toBe(403);
    const xml = await refused.text();
    expect(xml).toContain('<Code>AccessDenied</Code>');
    expect(xml).toContain('no downloads left');
    // Its HEAD says so too, and counts nothing (as a native HEAD).
    const head = await getSignedUrl(s3, new HeadObjectCommand({ Bucket: bucket, Key: 'two.jpg' }), {
      expiresIn: 300,
    });
    expect((await fetch(head, { method: 'HEAD' })).status).toBe(403);

    // The owner's header-signed reads count nothing and are not refused.
    const owned = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'two.jpg' }));
    expect((await hashBody(owned.Body as Readable)).sha256).toBe(sha256(photo));
  });

  it('a presigned HEAD counts nothing; a presigned Range GET counts once, and its resume none', async () => {
    const fileId = await put('three.jpg', 3);
    const head = await getSignedUrl(
      s3,
      new HeadObjectCommand({ Bucket: bucket, Key: 'three.jpg' }),
      { expiresIn: 300 },
    );
    expect((await fetch(head, { method: 'HEAD' })).status).toBe(200);
    expect(await downloadsLeft(fileId)).toBe('3');

    const url = await presignGet('three.jpg');
    const first = await fetch(url, { headers: { range: 'bytes=0-99' } });
    expect(first.status).toBe(206);
    expect(Buffer.from(await first.arrayBuffer())).toEqual(photo.subarray(0, 100));
    expect(await downloadsLeft(fileId)).toBe('2');
    // The rest, from the same client: a resume of the counted read (its address holds the grant).
    const rest = await fetch(url, { headers: { range: 'bytes=100-' } });
    expect(rest.status).toBe(206);
    expect(Buffer.from(await rest.arrayBuffer())).toEqual(photo.subarray(100));
    expect(await downloadsLeft(fileId)).toBe('2');
    // A fresh whole GET counts again.
    expect((await fetch(url)).status).toBe(200);
    expect(await downloadsLeft(fileId)).toBe('1');
  });

  it("a browser's resume under If-Range: the same object's rest, uncounted; a key overwritten since, the whole new object", async () => {
    const url = await presignGet('resumed.jpg');
    const fileId = await put('resumed.jpg', 5);
    const first = await fetch(url, { headers: { range: 'bytes=0-99' } });
    expect(first.status).toBe(206);
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    await first.arrayBuffer();
    expect(await downloadsLeft(fileId)).toBe('4');
    // A browser resumes with its validator, the ETag or the date.
    for (const validator of [etag, lastModified]) {
      const rest = await fetch(url, { headers: { range: 'bytes=100-', 'if-range': validator } });
      expect(rest.status).toBe(206);
      expect(Buffer.from(await rest.arrayBuffer())).toEqual(photo.subarray(100));
    }
    expect(await downloadsLeft(fileId)).toBe('4');

    // The key now names other bytes: a range of them would splice two files together.
    const other = fixture('alpha.png');
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'resumed.jpg',
        Body: other,
        ContentType: 'image/png',
      }),
    );
    const stale = await fetch(url, { headers: { range: 'bytes=100-', 'if-range': etag } });
    expect(stale.status).toBe(200);
    expect(stale.headers.get('content-range')).toBeNull();
    expect(Buffer.from(await stale.arrayBuffer())).toEqual(other);
  });

  it('a presigned GET that no replica can serve gives its download back (503 ServiceUnavailable)', async () => {
    const fileId = await put('unserved.jpg', 2);
    const url = await presignGet('unserved.jpg');
    for (const node of cluster.nodes) await cluster.kill(node.id, 'SIGKILL');
    try {
      const res = await fetch(url);
      expect(res.status).toBe(503);
      expect(await res.text()).toContain('<Code>ServiceUnavailable</Code>');
    } finally {
      for (const node of cluster.nodes) await cluster.startNode(node.id);
    }
    expect(await downloadsLeft(fileId)).toBe('2');
    expect((await fetch(url)).status).toBe(200);
    expect(await downloadsLeft(fileId)).toBe('1');
  });

  it('a presigned GET of a deleted object is 404 NoSuchKey; the owner reads of it too', async () => {
    await put('gone.jpg', 0);
    const url = await presignGet('gone.jpg');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone.jpg' }));
    const after = await fetch(url);
    expect(after.status).toBe(404);
    expect(await after.text()).toContain('<Code>NoSuchKey</Code>');
  });

  it('an expired presigned URL is 403 AccessDenied "Request has expired"', async () => {
    await put('late.jpg', 0);
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'late.jpg' }), {
      expiresIn: 60,
      signingDate: new Date(Date.now() - 5 * 60_000),
    });
    const res = await fetch(url);
    expect(res.status).toBe(403);
    const xml = await res.text();
    expect(xml).toContain('<Code>AccessDenied</Code>');
    expect(xml).toContain('<Message>Request has expired</Message>');
  });

  it('a presigned PUT stores an object as its signer', async () => {
    const url = await getSignedUrl(
      s3,
      new PutObjectCommand({ Bucket: bucket, Key: 'uploaded.jpg' }),
      { expiresIn: 300 },
    );
    const res = await fetch(url, { method: 'PUT', body: photo });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-trove-file-id')).toMatch(/\S/);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'uploaded.jpg' }));
    expect((await hashBody(got.Body as Readable)).sha256).toBe(sha256(photo));
  });

  it.skipIf(awsMissing)('a URL made by `aws s3 presign` is fetched, and counts', async () => {
    const fileId = await put('cli.jpg', 5);
    // As docs/s3.md sets it up (awsCli does): without it, aws-cli presigns with SigV2, which is refused.
    const url = awsCli(endpoint, key, [
      's3',
      'presign',
      `s3://${bucket}/cli.jpg`,
      '--expires-in',
      '300',
    ]).stdout.trim();
    expect(url).toContain('X-Amz-Signature=');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(photo));
    expect(await downloadsLeft(fileId)).toBe('4');
  });
});

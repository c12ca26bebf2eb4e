/**
 * S3 multipart uploads against a real cluster (gateway with S3_PORT, three
 * storage nodes), with @aws-sdk/client-s3's commands and lib-storage's
 * Upload as users send them: parts out of order and sent again, the
 * listings, the Complete's refusals, Abort, and a 100 MB upload streamed.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  METADATA_KINDS,
  partsOnNodes,
  freePort,
  hashBody,
  jpegStream,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';
import { createAccessKey, s3Error } from './s3-test-client.js';

const ADMIN_TOKEN = 's3-multipart-test-admin-token';
const MiB = 1024 * 1024;

let cluster: Cluster;
let s3: S3Client;
let endpoint: string;

function client(key: { id: string; secret: string }): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
    maxAttempts: 1,
  });
}

const md5 = (bytes: Buffer) => createHash('md5').update(bytes).digest('hex');

/** S3's multipart ETag, computed here from the parts' bytes. */
function expectedEtag(parts: Buffer[]): string {
  const hash = createHash('md5');
  for (const part of parts) hash.update(createHash('md5').update(part).digest());
  return `"${hash.digest('hex')}-${parts.length}"`;
}

/** Random bytes; a first part begins as a JPEG does (the type is sniffed from it). */
function bytes(size: number, jpeg = false): Buffer {
  const buf = randomBytes(size);
  if (jpeg) buf.set([0xff, 0xd8, 0xff, 0xe0], 0);
  return buf;
}

async function fileIdOf(uploadId: string): Promise<string> {
  const [row] = await cluster.query<{ file_id: string }>(
    `SELECT file_id FROM resumable_uploads WHERE id = '${uploadId}'`,
  );
  return row!.file_id;
}

const partRows = (uploadId: string) =>
  cluster.query<{ key: string }>(`SELECT key FROM upload_parts WHERE upload_id = '${uploadId}'`);

describe.each(METADATA_KINDS)('S3 multipart uploads (%s metadata)', (metadata) => {
  const Bucket = 'albums';

  beforeAll(async () => {
    const s3Port = await freePort();
    cluster = await startCluster({
      metadata,
      env: { ADMIN_TOKEN, S3_PORT: String(s3Port) },
    });
    endpoint = `http://127.0.0.1:${s3Port}`;
    s3 = client(await createAccessKey(cluster, ADMIN_TOKEN));
    await s3.send(new CreateBucketCommand({ Bucket }));
  });

  afterAll(async () => {
    s3?.destroy();
    await cluster?.stop();
  });

  async function create(Key: string): Promise<string> {
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({
        Bucket,
        Key,
        ContentType: 'image/jpeg',
        Metadata: { caption: 'road trip', 'max-downloads': '7' },
      }),
    );
    expect(UploadId).toMatch(/\S/);
    return UploadId!;
  }

  async function put(Key: string, UploadId: string, PartNumber: number, Body: Buffer) {
    const { ETag } = await s3.send(
      new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body }),
    );
    expect(ETag).toBe(`"${md5(Body)}"`);
    return ETag!;
  }

  /** Parts 1..N with the ETags of these bytes. */
  const listOf = (parts: Buffer[]) =>
    parts.map((p, i) => ({ PartNumber: i + 1, ETag: `"${md5(p)}"` }));

  function complete(Key: string, UploadId: string, Parts: { PartNumber: number; ETag: string }[]) {
    return s3.send(
      new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }),
    );
  }

  it('composes parts sent out of order and again into one object of three replicas', async () => {
    const Key = 'trip/day-1.jpg';
    const UploadId = await create(Key);
    const part1 = bytes(5 * MiB, true);
    const part2 = bytes(5 * MiB);
    const part2Again = bytes(5 * MiB);
    const part3 = bytes(123_457);
    await put(Key, UploadId, 3, part3);
    await put(Key, UploadId, 1, part1);
    await put(Key, UploadId, 2, part2);
    // Sent again with other bytes: the last one wins.
    const etag2 = await put(Key, UploadId, 2, part2Again);

    const listed = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId }));
    expect(listed.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([
      [1, 5 * MiB, `"${md5(part1)}"`],
      [2, 5 * MiB, etag2],
      [3, part3.length, `"${md5(part3)}"`],
    ]);
    const page = await s3.send(
      new ListPartsCommand({ Bucket, Key, UploadId, MaxParts: 2, PartNumberMarker: '0' }),
    );
    expect(page.Parts?.map((p) => p.PartNumber)).toEqual([1, 2]);
    expect(page.IsTruncated).toBe(true);
    expect(page.NextPartNumberMarker).toBe('2');

    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'trip/' }));
    expect(uploads.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([[Key, UploadId]]);
    const none = await s3.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'other/' }));
    expect(none.Uploads ?? []).toEqual([]);

    const fileId = await fileIdOf(UploadId);
    const expected = [part1, part2Again, part3];
    const done = await complete(Key, UploadId, listOf(expected));
    expect(done.ETag).toBe(expectedEtag(expected));
    expect(done.ETag).toMatch(/^"[0-9a-f]{32}-3"$/);
    expect(done.Key).toBe(Key);

    const object = await s3.send(new GetObjectCommand({ Bucket, Key }));
    expect(object.ETag).toBe(done.ETag);
    expect(object.ContentType).toBe('image/jpeg');
    expect(object.Metadata).toMatchObject({ caption: 'road trip' });
    expect((await hashBody(object.Body as Readable)).sha256).toBe(sha256(Buffer.concat(expected)));
    const replicas = await cluster.query<{ node: string; state: string }>(
      `SELECT node, state FROM replicas WHERE file_id = '${fileId}'`,
    );
    expect(replicas.map((r) => r.state)).toEqual(['ok', 'ok', 'ok']);
    // The share link has the options of the metadata given at Create.
    const link = await fetch(`${cluster.gatewayUrl}/download/${fileId}`, { method: 'HEAD' });
    expect(link.headers.get('x-downloads-left')).toBe('7');

    // A Complete sent again answers the same; the upload is no longer open.
    const again = await complete(Key, UploadId, listOf([part1]));
    expect(again.ETag).toBe(done.ETag);
    expect(await s3Error(s3.send(new ListPartsCommand({ Bucket, Key, UploadId })))).toEqual({
      name: 'NoSuchUpload',
      status: 404,
    });
    const after = await s3.send(new ListMultipartUploadsCommand({ Bucket }));
    expect(after.Uploads ?? []).toEqual([]);

    // No part is left behind, the replaced one included.
    await waitFor(
      'parts removed',
      async () => (await partsOnNodes(cluster, fileId)).length === 0,
      10_000,
    );
    await waitFor(
      'part rows forgotten',
      async () => (await partRows(UploadId)).length === 0,
      10_000,
    );
  });

  it('Abort ends the upload and removes its parts', async () => {
    const Key = 'trip/abandoned.jpg';
    const UploadId = await create(Key);
    await put(Key, UploadId, 1, bytes(64 * 1024, true));
    const fileId = await fileIdOf(UploadId);
    expect((await partsOnNodes(cluster, fileId)).length).toBe(3);
    // An S3 upload is no tus upload: /tus/<UploadId> neither shows nor takes it.
    for (const method of ['HEAD', 'PATCH', 'DELETE']) {
      const tus = await fetch(`${cluster.gatewayUrl}/tus/${UploadId}`, {
        method,
        headers: {
          'tus-resumable': '1.0.0',
          'upload-offset': '0',
          'content-type': 'application/offset+octet-stream',
        },
        body: method === 'PATCH' ? bytes(10, true) : undefined,
      });
      expect(tus.status).toBe(404);
    }
    await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
    expect(await partsOnNodes(cluster, fileId)).toEqual([]);
    expect(await partRows(UploadId)).toEqual([]);
    expect(
      await s3Error(
        s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 2, Body: bytes(10) })),
      ),
    ).toEqual({ name: 'NoSuchUpload', status: 404 });
    expect(
      await s3Error(s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }))),
    ).toEqual({ name: 'NoSuchUpload', status: 404 });
  });

  it('refuses a Complete with a wrong ETag, a small part that is not the last, an unknown upload', async () => {
    const Key = 'trip/refused.jpg';
    const UploadId = await create(Key);
    const part1 = bytes(100_000, true);
    const part2 = bytes(100_000);
    await put(Key, UploadId, 1, part1);
    await put(Key, UploadId, 2, part2);
    const refused = (Parts: { PartNumber: number; ETag: string }[], id = UploadId) =>
      s3Error(complete(Key, id, Parts));
    expect(
      await refused([
        { PartNumber: 1, ETag: `"${md5(part2)}"` },
        { PartNumber: 2, ETag: `"${md5(part2)}"` },
      ]),
    ).toEqual({ name: 'InvalidPart', status: 400 });
    expect(await refused([{ PartNumber: 3, ETag: `"${md5(part2)}"` }])).toEqual({
      name: 'InvalidPart',
      status: 400,
    });
    expect(
      await refused([
        { PartNumber: 1, ETag: `"${md5(part1)}"` },
        { PartNumber: 2, ETag: `"${md5(part2)}"` },
      ]),
    ).toEqual({ name: 'EntityTooSmall', status: 400 });
    expect(
      await refused([
        { PartNumber: 2, ETag: `"${md5(part2)}"` },
        { PartNumber: 1, ETag: `"${md5(part1)}"` },
      ]),
    ).toEqual({ name: 'InvalidPartOrder', status: 400 });
    expect(await refused([{ PartNumber: 1, ETag: `"${md5(part1)}"` }], 'no-such-upload')).toEqual({
      name: 'NoSuchUpload',
      status: 404,
    });
    expect(
      await s3Error(
        s3.send(
          new UploadPartCommand({
            Bucket,
            Key,
            UploadId: 'no-such-upload',
            PartNumber: 1,
            Body: part1,
          }),
        ),
      ),
    ).toEqual({ name: 'NoSuchUpload', status: 404 });
    // Another key's upload is no upload of this key.
    expect(
      await s3Error(s3.send(new ListPartsCommand({ Bucket, Key: 'trip/other.jpg', UploadId }))),
    ).toEqual({ name: 'NoSuchUpload', status: 404 });
    // A part whose bytes are not the ones its Content-MD5 names is not kept.
    const rowsBefore = (await partRows(UploadId)).length;
    expect(
      await s3Error(
        s3.send(
          new UploadPartCommand({
            Bucket,
            Key,
            UploadId,
            PartNumber: 3,
            Body: part2,
            ContentMD5: createHash('md5').update(part1).digest('base64'),
          }),
        ),
      ),
    ).toEqual({ name: 'BadDigest', status: 400 });
    expect((await partRows(UploadId)).length).toBe(rowsBefore);
    expect((await partsOnNodes(cluster, await fileIdOf(UploadId))).length).toBe(3 * rowsBefore);
    // Still open after the refusals: one part alone completes (the last may be small).
    const done = await complete(Key, UploadId, listOf([part1]));
    expect(done.ETag).toBe(expectedEtag([part1]));
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
    expect(head.ContentLength).toBe(part1.length);
  });

  it('two Completes of one upload at once: one composes, both answer the object', async () => {
    const Key = 'trip/twice.jpg';
    const UploadId = await create(Key);
    const part1 = bytes(6 * MiB, true);
    const part2 = bytes(1000);
    await put(Key, UploadId, 1, part1);
    await put(Key, UploadId, 2, part2);
    const Parts = listOf([part1, part2]);
    const answers = await Promise.all([
      complete(Key, UploadId, Parts),
      complete(Key, UploadId, Parts),
    ]);
    expect(answers.map((a) => a.ETag)).toEqual([
      expectedEtag([part1, part2]),
      expectedEtag([part1, part2]),
    ]);
    const object = await s3.send(new GetObjectCommand({ Bucket, Key }));
    expect((await hashBody(object.Body as Readable)).sha256).toBe(
      sha256(Buffer.concat([part1, part2])),
    );
  });

  it('refuses at Complete an object whose first bytes are not an allowed type', async () => {
    const Key = 'trip/notes.txt';
    const UploadId = await create(Key);
    const text = Buffer.from('just some words, not an image\n'.repeat(100));
    await put(Key, UploadId, 1, text);
    expect(await s3Error(complete(Key, UploadId, listOf([text])))).toEqual({
      name: 'InvalidRequest',
      status: 400,
    });
    expect(await s3Error(s3.send(new HeadObjectCommand({ Bucket, Key })))).toMatchObject({
      status: 404,
    });
    await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
  });

  it("UploadPartCopy copies a source's range or whole into parts, uncounted; refuses bad ranges and sources", async () => {
    const source = bytes(12 * MiB, true);
    await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: 'trip/source.jpg',
        Body: source,
        Metadata: { 'max-downloads': '1' },
      }),
    );
    const Key = 'trip/assembled.jpg';
    const UploadId = await create(Key);
    const copy = (
      PartNumber: number,
      extra: Partial<ConstructorParameters<typeof UploadPartCopyCommand>[0]> = {},
    ) =>
      s3.send(
        new UploadPartCopyCommand({
          Bucket,
          Key,
          UploadId,
          PartNumber,
          CopySource: `${Bucket}/trip/source.jpg`,
          ...extra,
        }),
      );
    const part1 = source.subarray(0, 6 * MiB);
    const part2 = bytes(5 * MiB);
    const copied1 = await copy(1, { CopySourceRange: `bytes=0-${6 * MiB - 1}` });
    expect(copied1.CopyPartResult?.ETag).toBe(`"${md5(part1)}"`);
    expect(copied1.CopyPartResult?.LastModified).toBeInstanceOf(Date);
    await put(Key, UploadId, 2, part2);
    const copied3 = await copy(3);
    expect(copied3.CopyPartResult?.ETag).toBe(`"${md5(source)}"`);

    const invalid = { name: 'InvalidArgument', status: 400 };
    expect(await s3Error(copy(4, { CopySourceRange: 'bytes=5-2' }))).toEqual(invalid);
    expect(await s3Error(copy(4, { CopySourceRange: `bytes=0-${12 * MiB}` }))).toEqual(invalid);
    expect(await s3Error(copy(4, { CopySource: `${Bucket}/trip/none.jpg` }))).toEqual({
      name: 'NoSuchKey',
      status: 404,
    });
    expect(
      await s3Error(copy(4, { CopySourceIfMatch: '"00000000000000000000000000000000"' })),
    ).toEqual({ name: 'PreconditionFailed', status: 412 });
    const other = client(await createAccessKey(cluster, ADMIN_TOKEN));
    try {
      await other.send(new CreateBucketCommand({ Bucket: 'not-yours' }));
      await other.send(
        new PutObjectCommand({ Bucket: 'not-yours', Key: 'theirs.jpg', Body: part1 }),
      );
      expect(await s3Error(copy(4, { CopySource: 'not-yours/theirs.jpg' }))).toEqual({
        name: 'AccessDenied',
        status: 403,
      });
    } finally {
      other.destroy();
    }

    const listed = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId }));
    expect(listed.Parts?.map((p) => [p.PartNumber, p.Size])).toEqual([
      [1, 6 * MiB],
      [2, 5 * MiB],
      [3, 12 * MiB],
    ]);
    const expected = [part1, part2, source];
    const done = await complete(Key, UploadId, listOf(expected));
    expect(done.ETag).toBe(expectedEtag(expected));
    const object = await s3.send(new GetObjectCommand({ Bucket, Key }));
    expect(object.ContentLength).toBe(23 * MiB);
    expect((await hashBody(object.Body as Readable)).sha256).toBe(sha256(Buffer.concat(expected)));

    // Two copies of the source read it: neither took its one download.
    const [row] = await cluster.query<{ file_id: string }>(
      `SELECT file_id FROM s3_objects WHERE bucket = '${Bucket}' AND key = 'trip/source.jpg'`,
    );
    const link = await fetch(`${cluster.gatewayUrl}/download/${row!.file_id}`, { method: 'HEAD' });
    expect(link.headers.get('x-downloads-left')).toBe('1');
  });

  it('a 100 MB stream round-trips through lib-storage Upload', { timeout: 120_000 }, async () => {
    const Key = 'trip/video-frame.jpg';
    const size = 100 * MiB;
    const source = jpegStream(size);
    const upload = new Upload({
      client: s3,
      params: { Bucket, Key, Body: source.stream },
      partSize: 8 * MiB,
      queueSize: 4,
    });
    const done = await upload.done();
    expect(done.ETag).toMatch(/^"[0-9a-f]{32}-13"$/);
    const object = await s3.send(new GetObjectCommand({ Bucket, Key }));
    expect(object.ContentLength).toBe(size);
    expect((await hashBody(object.Body as Readable)).sha256).toBe(source.digest());
  });
});

describe('S3 multipart uploads under MAX_UPLOAD_BYTES', () => {
  const Bucket = 'limited';
  const LIMIT = 11 * MiB;
  let small: Cluster;
  let limited: S3Client;

  beforeAll(async () => {
    const s3Port = await freePort();
    small = await startCluster({
      env: { ADMIN_TOKEN, S3_PORT: String(s3Port), MAX_UPLOAD_BYTES: String(LIMIT) },
    });
    endpoint = `http://127.0.0.1:${s3Port}`;
    const key = await createAccessKey(small, ADMIN_TOKEN);
    limited = client(key);
    await limited.send(new CreateBucketCommand({ Bucket }));
  });

  afterAll(async () => {
    limited?.destroy();
    await small?.stop();
  });

  it('a part sent again takes the room of the one it replaces; past the limit is EntityTooLarge', async () => {
    const Key = 'full.jpg';
    const { UploadId } = await limited.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const send = (PartNumber: number, Body: Buffer) =>
      limited.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body }));
    const part1 = bytes(6 * MiB, true);
    const part2 = bytes(5 * MiB);
    const part2Again = bytes(5 * MiB);
    await send(1, part1);
    await send(2, part2);
    // The upload holds the limit exactly: sending part 2 again only replaces its 5 MiB.
    const { ETag } = await send(2, part2Again);
    expect(ETag).toBe(`"${md5(part2Again)}"`);
    expect(await s3Error(send(3, bytes(1)))).toEqual({ name: 'EntityTooLarge', status: 400 });

    const Parts = [part1, part2Again].map((p, i) => ({ PartNumber: i + 1, ETag: `"${md5(p)}"` }));
    await limited.send(
      new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }),
    );
    const object = await limited.send(new GetObjectCommand({ Bucket, Key }));
    expect(object.ContentLength).toBe(LIMIT);
    expect((await hashBody(object.Body as Readable)).sha256).toBe(
      sha256(Buffer.concat([part1, part2Again])),
    );
  });

  it('a PutObject over the limit is EntityTooLarge and stores nothing', async () => {
    const put = limited.send(
      new PutObjectCommand({ Bucket, Key: 'big.jpg', Body: bytes(LIMIT + 1, true) }),
    );
    expect(await s3Error(put)).toEqual({ name: 'EntityTooLarge', status: 400 });
    expect(await s3Error(limited.send(new HeadObjectCommand({ Bucket, Key: 'big.jpg' })))).toEqual({
      name: 'NotFound',
      status: 404,
    });
  });
});

describe('S3 CompleteMultipartUpload kept alive', () => {
  const Bucket = 'slow';
  let slow: Cluster;
  let kept: S3Client;

  beforeAll(async () => {
    const s3Port = await freePort();
    // Every Complete is "slow": its 200 goes out at once, the document (or <Error>) after.
    slow = await startCluster({
      env: { ADMIN_TOKEN, S3_PORT: String(s3Port), S3_COMPLETE_KEEPALIVE_MS: '1' },
    });
    endpoint = `http://127.0.0.1:${s3Port}`;
    kept = client(await createAccessKey(slow, ADMIN_TOKEN));
    await kept.send(new CreateBucketCommand({ Bucket }));
  });

  afterAll(async () => {
    kept?.destroy();
    await slow?.stop();
  });

  /** CompleteMultipartUpload answers counted by the gateway (GET /metrics), by status. */
  async function completes(): Promise<Record<string, number>> {
    const text = await (await fetch(`${slow.gatewayUrl}/metrics`)).text();
    const counts: Record<string, number> = {};
    const line =
      /^trove_s3_requests_total\{operation="CompleteMultipartUpload",status="(\d+)"\} (\d+)/gm;
    for (const [, status, count] of text.matchAll(line)) counts[status!] = Number(count);
    return counts;
  }

  /** A two-part upload of `Key`, its parts sent; answers what Complete needs. */
  async function uploaded(Key: string) {
    const parts = [bytes(5 * MiB, true), bytes(1024)];
    const { UploadId } = await kept.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    for (const [i, Body] of parts.entries())
      await kept.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body }));
    const Parts = parts.map((p, i) => ({ PartNumber: i + 1, ETag: `"${md5(p)}"` }));
    const complete = new CompleteMultipartUploadCommand({
      Bucket,
      Key,
      UploadId,
      MultipartUpload: { Parts },
    });
    return { parts, complete };
  }

  it('the SDK reads the document that follows the early 200', async () => {
    const { parts, complete } = await uploaded('kept.jpg');
    const done = await kept.send(complete);
    expect(done.ETag).toBe(expectedEtag(parts));
    const object = await kept.send(new GetObjectCommand({ Bucket, Key: 'kept.jpg' }));
    expect((await hashBody(object.Body as Readable)).sha256).toBe(sha256(Buffer.concat(parts)));
  });

  it('the SDK reads the <Error> in the 200 of a Complete that failed as that error', async () => {
    const { complete } = await uploaded('failed.jpg');
    // Two of three nodes gone: no write quorum can compose the object.
    const [, second, third] = slow.nodes;
    await slow.kill(second!.id);
    await slow.kill(third!.id);
    try {
      const before = await completes();
      // The SDK reports an <Error> in a Complete's 200 as the error it names, with a 503.
      expect(await s3Error(kept.send(complete))).toEqual({
        name: 'ServiceUnavailable',
        status: 503,
      });
      // On the wire it was a 200 (the gateway's own count): the error came in its body.
      const after = await completes();
      expect(after['200']! - (before['200'] ?? 0)).toBe(1);
      expect(after['503'] ?? 0).toBe(before['503'] ?? 0);
    } finally {
      await slow.startNode(second!.id);
      await slow.startNode(third!.id);
    }
  });
});

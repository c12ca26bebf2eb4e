import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CompleteMultipartUploadCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  NoSuchKey,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListV1Request, ListV2Request } from './listing.js';
import {
  completeMultipartUploadXml,
  copyObjectResultXml,
  copyPartResultXml,
  deleteResultXml,
  errorXml,
  initiateMultipartUploadXml,
  listAllMyBucketsXml,
  listMultipartUploadsXml,
  listObjectsV1Xml,
  listObjectsV2Xml,
  listPartsXml,
  locationConstraintXml,
  type ObjectSummary,
} from './s3-xml.js';
import { escapeXml, s3UrlEncode } from './xml-writer.js';

const owner = { id: 'owner-id', displayName: 'trove' };
const when = new Date('2024-05-06T07:08:09.012Z');
const awkward = 'dir/a & b <c> "d" \'e\' café 😀 +plus.jpg';
const objects: ObjectSummary[] = [
  { key: awkward, lastModified: when, etag: 'd41d8cd98f00b204e9800998ecf8427e', size: 0 },
  {
    key: 'dir/plain.txt',
    lastModified: when,
    etag: '"0123456789abcdef0123456789abcdef-2"',
    size: 12345678901,
  },
];

/** The elements that repeat, by path: the reader makes them arrays even when single. */
const arrays = new Set([
  'ListBucketResult.Contents',
  'ListBucketResult.CommonPrefixes',
  'ListAllMyBucketsResult.Buckets.Bucket',
  'ListPartsResult.Part',
  'ListMultipartUploadsResult.Upload',
  'ListMultipartUploadsResult.CommonPrefixes',
  'DeleteResult.Deleted',
  'DeleteResult.Error',
]);
const reader = new XMLParser({
  parseTagValue: false,
  trimValues: false,
  isArray: (_name, path) => typeof path === 'string' && arrays.has(path),
});
const read = (xml: string): Record<string, Record<string, unknown>> => reader.parse(xml);

const v2Request: ListV2Request = {
  prefix: 'dir/',
  delimiter: '/',
  maxKeys: 2,
  startAfter: 'dir/ ',
  continuationToken: 'dDE6ZGlyLw',
  fetchOwner: false,
};
const v2Result = {
  contents: objects,
  commonPrefixes: ['dir/sub dir/', 'dir/é&<>/'],
  isTruncated: true,
  keyCount: 4,
  nextContinuationToken: 'dDE6ZGlyL8OpJjw-Lw',
};

describe('escapeXml and s3UrlEncode', () => {
  it('escapes markup, quotes and control characters', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe(
      '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;',
    );
    expect(escapeXml('a\r\nb\tc\u0001\uFFFF')).toBe('a&#xD;&#xA;b&#x9;c&#x1;&#xFFFF;');
    expect(escapeXml('é😀')).toBe('é😀');
    expect(escapeXml('lone \uD800 surrogate')).toBe('lone \uFFFD surrogate');
  });

  it('url-encodes as S3 does: / and * kept, space as +, + and ~ encoded', () => {
    expect(s3UrlEncode("a b+c/d*e~f!g'(h)&é")).toBe('a+b%2Bc/d*e%7Ef%21g%27%28h%29%26%C3%A9');
  });
});

describe('rendered documents', () => {
  it('starts with the declaration and the S3 namespace', () => {
    const xml = initiateMultipartUploadXml('b', awkward, 'upload-1');
    expect(
      xml.startsWith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
      ),
    ).toBe(true);
    expect(read(xml).InitiateMultipartUploadResult).toMatchObject({
      Bucket: 'b',
      Key: awkward,
      UploadId: 'upload-1',
    });
  });

  it('writes ListObjectsV2 with its tokens, counts and common prefixes', () => {
    const doc = read(listObjectsV2Xml('bucket', v2Request, v2Result, owner)).ListBucketResult!;
    expect(doc).toMatchObject({
      Name: 'bucket',
      Prefix: 'dir/',
      ContinuationToken: 'dDE6ZGlyLw',
      NextContinuationToken: 'dDE6ZGlyL8OpJjw-Lw',
      KeyCount: '4',
      MaxKeys: '2',
      Delimiter: '/',
      IsTruncated: 'true',
      StartAfter: 'dir/ ',
    });
    expect(doc.Contents).toEqual([
      {
        Key: awkward,
        LastModified: '2024-05-06T07:08:09.012Z',
        ETag: '"d41d8cd98f00b204e9800998ecf8427e"',
        Size: '0',
        StorageClass: 'STANDARD',
      },
      {
        Key: 'dir/plain.txt',
        LastModified: '2024-05-06T07:08:09.012Z',
        ETag: '"0123456789abcdef0123456789abcdef-2"',
        Size: '12345678901',
        StorageClass: 'STANDARD',
      },
    ]);
    expect(doc.CommonPrefixes).toEqual([{ Prefix: 'dir/sub dir/' }, { Prefix: 'dir/é&<>/' }]);
    expect(doc.EncodingType).toBeUndefined();
  });

  it('url-encodes keys, prefixes, delimiter and start-after for EncodingType=url', () => {
    const request = { ...v2Request, encodingType: 'url' as const, delimiter: ' ' };
    const doc = read(listObjectsV2Xml('bucket', request, v2Result, owner)).ListBucketResult!;
    expect(doc).toMatchObject({ EncodingType: 'url', Delimiter: '+', StartAfter: 'dir/+' });
    const contents = doc.Contents as { Key: string }[];
    const formDecode = (text: string) => decodeURIComponent(text.replace(/\+/g, ' '));
    expect(contents[0]!.Key).toBe(s3UrlEncode(awkward));
    expect(formDecode(contents[0]!.Key)).toBe(awkward);
    expect(doc.CommonPrefixes).toEqual([
      { Prefix: 'dir/sub+dir/' },
      { Prefix: 'dir/%C3%A9%26%3C%3E/' },
    ]);
  });

  it('writes ListObjects v1 with owners, and NextMarker only when given', () => {
    const request: ListV1Request = {
      prefix: '',
      delimiter: '/',
      maxKeys: 1000,
      marker: 'a&b',
      encodingType: 'url',
    };
    const truncated = read(
      listObjectsV1Xml('bucket', request, { ...v2Result, nextMarker: 'dir/é&<>/' }, owner),
    ).ListBucketResult!;
    expect(truncated).toMatchObject({
      Marker: 'a%26b',
      NextMarker: 'dir/%C3%A9%26%3C%3E/',
      MaxKeys: '1000',
    });
    expect((truncated.Contents as object[])[0]).toMatchObject({
      Owner: { ID: 'owner-id', DisplayName: 'trove' },
    });
    const done = read(
      listObjectsV1Xml(
        'bucket',
        { ...request, delimiter: undefined },
        { contents: [], commonPrefixes: [], isTruncated: false },
        owner,
      ),
    ).ListBucketResult!;
    expect(done).toMatchObject({
      Name: 'bucket',
      Prefix: '',
      Marker: 'a%26b',
      IsTruncated: 'false',
    });
    expect(done).not.toHaveProperty('NextMarker');
    expect(done).not.toHaveProperty('Delimiter');
  });

  it('writes the multipart listings', () => {
    const parts = read(
      listPartsXml({
        bucket: 'b',
        key: awkward,
        uploadId: 'u',
        owner,
        partNumberMarker: 0,
        nextPartNumberMarker: 2,
        maxParts: 2,
        isTruncated: true,
        parts: [1, 2].map((n) => ({
          partNumber: n,
          lastModified: when,
          etag: `e${n}`,
          size: 5 * 1024 * 1024,
        })),
      }),
    ).ListPartsResult!;
    expect(parts).toMatchObject({
      Key: awkward,
      NextPartNumberMarker: '2',
      IsTruncated: 'true',
      StorageClass: 'STANDARD',
    });
    expect(parts.Part).toEqual(
      [1, 2].map((n) => ({
        PartNumber: `${n}`,
        LastModified: '2024-05-06T07:08:09.012Z',
        ETag: `"e${n}"`,
        Size: '5242880',
      })),
    );
    const uploads = read(
      listMultipartUploadsXml({
        bucket: 'b',
        owner,
        prefix: '',
        keyMarker: '',
        uploadIdMarker: '',
        maxUploads: 1000,
        isTruncated: false,
        encodingType: 'url',
        delimiter: '/',
        uploads: [{ key: awkward, uploadId: 'u1', initiated: when }],
        commonPrefixes: ['x y/'],
      }),
    ).ListMultipartUploadsResult!;
    expect(uploads.Upload).toEqual([
      {
        Key: s3UrlEncode(awkward),
        UploadId: 'u1',
        Initiator: { ID: 'owner-id', DisplayName: 'trove' },
        Owner: { ID: 'owner-id', DisplayName: 'trove' },
        StorageClass: 'STANDARD',
        Initiated: '2024-05-06T07:08:09.012Z',
      },
    ]);
    expect(uploads.CommonPrefixes).toEqual([{ Prefix: 'x+y/' }]);
  });

  it('writes copy results and location constraints', () => {
    expect(read(copyObjectResultXml('abc', when)).CopyObjectResult).toEqual({
      ETag: '"abc"',
      LastModified: '2024-05-06T07:08:09.012Z',
    });
    expect(read(copyPartResultXml('"abc"', when)).CopyPartResult).toEqual({
      ETag: '"abc"',
      LastModified: '2024-05-06T07:08:09.012Z',
    });
    expect(locationConstraintXml('us-east-1')).toContain(
      '<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></LocationConstraint>',
    );
    expect(locationConstraintXml('eu-west-1')).toContain('>eu-west-1</LocationConstraint>');
  });

  it('writes an Error without a namespace', () => {
    const xml = errorXml({
      code: 'NoSuchKey',
      message: 'The specified key does not exist.',
      resource: '/b/a&b',
      requestId: 'r1',
    });
    expect(xml).toContain('<Error><Code>NoSuchKey</Code>');
    expect(read(xml).Error).toEqual({
      Code: 'NoSuchKey',
      Message: 'The specified key does not exist.',
      Resource: '/b/a&b',
      RequestId: 'r1',
    });
  });

  it('writes the details of an error after its message', () => {
    const xml = errorXml({
      code: 'SignatureDoesNotMatch',
      message: 'm',
      details: { AWSAccessKeyId: 'TRV1', StringToSign: 'a<b' },
      requestId: 'r2',
    });
    expect(xml).toContain(
      '<Message>m</Message><AWSAccessKeyId>TRV1</AWSAccessKeyId><StringToSign>a&lt;b</StringToSign><RequestId>r2</RequestId>',
    );
  });
});

describe('what @aws-sdk/client-s3 reads of them', () => {
  let server: Server;
  let client: S3Client;
  let answer: { status: number; xml: string } = { status: 200, xml: '' };

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(answer.status, {
          'content-type': 'application/xml',
          'x-amz-request-id': 'r1',
        });
        res.end(answer.xml);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    client = new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 1,
    });
  });

  afterAll(async () => {
    client.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  const respond = (xml: string, status = 200) => {
    answer = { status, xml };
  };

  it('ListObjectsV2: contents with awkward keys, common prefixes, the next token', async () => {
    respond(listObjectsV2Xml('bucket', v2Request, v2Result, owner));
    const out = await client.send(
      new ListObjectsV2Command({ Bucket: 'bucket', Prefix: 'dir/', Delimiter: '/' }),
    );
    expect(out.Contents?.map((c) => c.Key)).toEqual([awkward, 'dir/plain.txt']);
    expect(out.Contents?.[0]).toMatchObject({
      ETag: '"d41d8cd98f00b204e9800998ecf8427e"',
      Size: 0,
      StorageClass: 'STANDARD',
      LastModified: when,
    });
    expect(out.Contents?.[1]?.Size).toBe(12345678901);
    expect(out.CommonPrefixes).toEqual([{ Prefix: 'dir/sub dir/' }, { Prefix: 'dir/é&<>/' }]);
    expect(out).toMatchObject({
      IsTruncated: true,
      KeyCount: 4,
      MaxKeys: 2,
      NextContinuationToken: 'dDE6ZGlyL8OpJjw-Lw',
      StartAfter: 'dir/ ',
    });
  });

  it('ListObjectsV2: a key with a carriage return and a control character', async () => {
    const key = 'odd\r\u0001key';
    respond(
      listObjectsV2Xml(
        'bucket',
        { ...v2Request, delimiter: undefined },
        { ...v2Result, contents: [{ ...objects[1]!, key }], commonPrefixes: [], keyCount: 1 },
        owner,
      ),
    );
    const out = await client.send(new ListObjectsV2Command({ Bucket: 'bucket' }));
    expect(out.Contents?.map((c) => c.Key)).toEqual([key]);
  });

  it('ListObjects v1: NextMarker and owners', async () => {
    const request: ListV1Request = { prefix: '', delimiter: '/', maxKeys: 2, marker: '' };
    respond(listObjectsV1Xml('bucket', request, { ...v2Result, nextMarker: 'dir/é&<>/' }, owner));
    const out = await client.send(new ListObjectsCommand({ Bucket: 'bucket', Delimiter: '/' }));
    expect(out).toMatchObject({ IsTruncated: true, NextMarker: 'dir/é&<>/' });
    expect(out.Contents?.[0]).toMatchObject({
      Key: awkward,
      Owner: { ID: 'owner-id', DisplayName: 'trove' },
    });
  });

  it('ListBuckets', async () => {
    respond(
      listAllMyBucketsXml(owner, [
        { name: 'photos', creationDate: when },
        { name: 'b2', creationDate: when },
      ]),
    );
    const out = await client.send(new ListBucketsCommand({}));
    expect(out.Buckets).toEqual([
      { Name: 'photos', CreationDate: when },
      { Name: 'b2', CreationDate: when },
    ]);
    expect(out.Owner).toEqual({ ID: 'owner-id', DisplayName: 'trove' });
  });

  it('GetBucketLocation, empty for us-east-1', async () => {
    respond(locationConstraintXml('us-east-1'));
    const east = await client.send(new GetBucketLocationCommand({ Bucket: 'b' }));
    expect(east.LocationConstraint ?? '').toBe('');
    respond(locationConstraintXml('eu-west-1'));
    const west = await client.send(new GetBucketLocationCommand({ Bucket: 'b' }));
    expect(west.LocationConstraint).toBe('eu-west-1');
  });

  it('CompleteMultipartUpload', async () => {
    respond(
      completeMultipartUploadXml({
        location: 'http://127.0.0.1/b/k%26',
        bucket: 'b',
        key: 'k&',
        etag: 'abc-2',
      }),
    );
    const out = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'b',
        Key: 'k&',
        UploadId: 'u',
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"x"' }] },
      }),
    );
    expect(out).toMatchObject({
      Location: 'http://127.0.0.1/b/k%26',
      Bucket: 'b',
      Key: 'k&',
      ETag: '"abc-2"',
    });
  });

  it('ListParts', async () => {
    respond(
      listPartsXml({
        bucket: 'b',
        key: 'k',
        uploadId: 'u',
        owner,
        partNumberMarker: 0,
        maxParts: 1000,
        isTruncated: false,
        parts: [{ partNumber: 1, lastModified: when, etag: 'e1', size: 5 }],
      }),
    );
    const out = await client.send(new ListPartsCommand({ Bucket: 'b', Key: 'k', UploadId: 'u' }));
    expect(out.Parts).toEqual([{ PartNumber: 1, LastModified: when, ETag: '"e1"', Size: 5 }]);
    expect(out.IsTruncated).toBe(false);
  });

  it('DeleteObjects: deleted keys and errors', async () => {
    respond(
      deleteResultXml(
        [awkward, 'b'],
        [{ key: 'c<', code: 'AccessDenied', message: 'Access Denied' }],
      ),
    );
    const out = await client.send(
      new DeleteObjectsCommand({
        Bucket: 'b',
        Delete: { Objects: [{ Key: awkward }, { Key: 'b' }, { Key: 'c<' }] },
      }),
    );
    expect(out.Deleted).toEqual([{ Key: awkward }, { Key: 'b' }]);
    expect(out.Errors).toEqual([{ Key: 'c<', Code: 'AccessDenied', Message: 'Access Denied' }]);
  });

  it('an Error body surfaces as the SDK error of its code, with our message', async () => {
    respond(
      errorXml({
        code: 'NoSuchKey',
        message: 'The specified key does not exist: a & <b>',
        resource: '/b/k',
        requestId: 'r1',
      }),
      404,
    );
    const error = await client
      .send(new GetObjectCommand({ Bucket: 'b', Key: 'k' }))
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(NoSuchKey);
    expect(error).toMatchObject({
      name: 'NoSuchKey',
      message: 'The specified key does not exist: a & <b>',
    });
    expect((error as S3ServiceException).$metadata.httpStatusCode).toBe(404);
  });
});

import { describe, expect, it } from 'vitest';
import { S3Error } from './s3-errors.js';
import {
  bucketOfHost,
  parseS3Request,
  splitTarget,
  type S3RequestLine,
  type S3RequestOptions,
} from './s3-request.js';

function route(
  method: string,
  target: string,
  extra: Partial<S3RequestLine> = {},
  options: S3RequestOptions = {},
) {
  return parseS3Request(
    { method, host: 'localhost:9000', ...splitTarget(target), ...extra },
    options,
  );
}

const op = (method: string, target: string, extra: Partial<S3RequestLine> = {}) =>
  route(method, target, extra).operation;

function refused(fn: () => unknown, code: string, status: number) {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(S3Error);
  expect(error).toMatchObject({ code, status });
}

const copy = { copySource: '/src/key' };

describe('parseS3Request: operations', () => {
  it.each([
    ['GET', '/', {}, 'ListBuckets'],
    ['PUT', '/b', {}, 'CreateBucket'],
    ['HEAD', '/b', {}, 'HeadBucket'],
    ['DELETE', '/b', {}, 'DeleteBucket'],
    ['GET', '/b?location', {}, 'GetBucketLocation'],
    ['GET', '/b', {}, 'ListObjects'],
    ['GET', '/b/', {}, 'ListObjects'],
    ['GET', '/b?prefix=a&delimiter=%2F', {}, 'ListObjects'],
    ['GET', '/b?list-type=2', {}, 'ListObjectsV2'],
    ['GET', '/b?uploads', {}, 'ListMultipartUploads'],
    ['POST', '/b?delete', {}, 'DeleteObjects'],
    ['PUT', '/b/k', {}, 'PutObject'],
    ['PUT', '/b/k?x-id=PutObject', {}, 'PutObject'],
    ['PUT', '/b/k', copy, 'CopyObject'],
    ['PUT', '/b/k?partNumber=3&uploadId=u1', {}, 'UploadPart'],
    ['PUT', '/b/k?partNumber=3&uploadId=u1', copy, 'UploadPartCopy'],
    ['GET', '/b/k', {}, 'GetObject'],
    ['GET', '/b/k?response-content-type=text%2Fplain&versionId=null', {}, 'GetObject'],
    ['HEAD', '/b/k', {}, 'HeadObject'],
    ['DELETE', '/b/k', {}, 'DeleteObject'],
    ['POST', '/b/k?uploads', {}, 'CreateMultipartUpload'],
    ['POST', '/b/k?uploadId=u1', {}, 'CompleteMultipartUpload'],
    ['DELETE', '/b/k?uploadId=u1', {}, 'AbortMultipartUpload'],
    ['GET', '/b/k?uploadId=u1', {}, 'ListParts'],
  ] as const)('%s %s %o is %s', (method, target, extra, operation) => {
    expect(op(method, target, extra)).toBe(operation);
  });

  it.each([
    'acl',
    'tagging',
    'versioning',
    'policy',
    'cors',
    'lifecycle',
    'versions',
    'website',
    'encryption',
    'object-lock',
    'retention',
    'legal-hold',
    'torrent',
    'select',
    'restore',
    'attributes',
  ])('answers ?%s as NotImplemented', (subresource) => {
    expect(op('GET', `/b?${subresource}`)).toBe('NotImplemented');
    expect(op('PUT', `/b/k?${subresource}`)).toBe('NotImplemented');
    expect(op('POST', `/b/k?${subresource}=`)).toBe('NotImplemented');
  });

  it('answers a real versionId and a browser-form POST as NotImplemented', () => {
    expect(op('GET', '/b/k?versionId=3HL4kqtJlcpXroDTDmJ%2Bry')).toBe('NotImplemented');
    expect(op('POST', '/b')).toBe('NotImplemented');
  });

  it('refuses a method the resource has not', () => {
    refused(() => op('PUT', '/'), 'MethodNotAllowed', 405);
    refused(() => op('POST', '/b/k'), 'MethodNotAllowed', 405);
    refused(() => op('PATCH', '/b/k'), 'MethodNotAllowed', 405);
    refused(() => op('PATCH', '/b'), 'MethodNotAllowed', 405);
  });
});

describe('parseS3Request: bucket and key', () => {
  it('reads path-style buckets and percent-decoded UTF-8 keys', () => {
    expect(route('GET', '/b/dir/sub/file.jpg')).toMatchObject({
      bucket: 'b',
      key: 'dir/sub/file.jpg',
    });
    expect(route('GET', '/b/a//b')).toMatchObject({ key: 'a//b' });
    expect(route('GET', '/b//lead')).toMatchObject({ key: '/lead' });
    expect(route('GET', '/b/my%20photo+1.jpg')).toMatchObject({ key: 'my photo+1.jpg' });
    expect(route('GET', '/b/caf%C3%A9/%F0%9F%98%80')).toMatchObject({ key: 'café/😀' });
    expect(route('GET', '/b/a%2Fb')).toMatchObject({ key: 'a/b' });
    expect(route('GET', '/b/a/../b/./c')).toMatchObject({ key: 'a/../b/./c' });
    expect(route('GET', '/')).toEqual({ operation: 'ListBuckets', query: new Map() });
  });

  it('reads the bucket from the host under the S3 domain', () => {
    const domain = { domain: 's3.example.com' };
    const at = (host: string, target: string) =>
      parseS3Request({ method: 'GET', host, ...splitTarget(target) }, domain);
    expect(at('photos.s3.example.com', '/2024/a.jpg')).toMatchObject({
      bucket: 'photos',
      key: '2024/a.jpg',
      operation: 'GetObject',
    });
    expect(at('my.dotted.bucket.S3.Example.com:9000', '/')).toMatchObject({
      bucket: 'my.dotted.bucket',
      operation: 'ListObjects',
    });
    expect(at('photos.s3.example.com', '//x')).toMatchObject({ key: '/x' });
    expect(at('s3.example.com', '/photos/a.jpg')).toMatchObject({ bucket: 'photos', key: 'a.jpg' });
    expect(at('127.0.0.1:9000', '/photos/a.jpg')).toMatchObject({ bucket: 'photos', key: 'a.jpg' });
    expect(at('s3.example.com', '/')).toMatchObject({ operation: 'ListBuckets' });
  });

  it('takes no bucket from a host outside the domain', () => {
    expect(bucketOfHost('b.s3.example.com', undefined)).toBeUndefined();
    expect(bucketOfHost('b.evil-s3.example.com', 'example.org')).toBeUndefined();
    expect(bucketOfHost('bs3.example.com', 's3.example.com')).toBeUndefined();
    expect(bucketOfHost('[::1]:9000', 's3.example.com')).toBeUndefined();
    expect(bucketOfHost('b.s3.example.com.', 's3.example.com')).toBe('b');
  });

  it('refuses a key over 1024 UTF-8 bytes', () => {
    expect(route('PUT', `/b/${'x'.repeat(1024)}`).key).toHaveLength(1024);
    refused(() => route('PUT', `/b/${'x'.repeat(1025)}`), 'KeyTooLongError', 400);
    // 342 three-byte characters: 1026 bytes in 342 UTF-16 units.
    refused(
      () => route('PUT', `/b/${encodeURIComponent('€'.repeat(342))}`),
      'KeyTooLongError',
      400,
    );
  });

  it('refuses a path that is not percent-encoded UTF-8', () => {
    refused(() => route('GET', '/b/%E9t%E9'), 'InvalidURI', 400);
    refused(() => route('GET', '/b/100%'), 'InvalidURI', 400);
    refused(() => route('GET', 'b/k'), 'InvalidURI', 400);
  });
});

describe('parseS3Request: parts and query', () => {
  it('reads the part number and upload id', () => {
    expect(route('PUT', '/b/k?partNumber=10000&uploadId=a%2Bb')).toMatchObject({
      partNumber: 10000,
      uploadId: 'a+b',
    });
    expect(route('GET', '/b/k?partNumber=2')).toMatchObject({
      operation: 'GetObject',
      partNumber: 2,
    });
  });

  it.each(['0', '10001', '-1', '1.5', 'x', '', '0x10', '99999999999'])(
    'refuses partNumber=%s',
    (part) => {
      refused(() => route('PUT', `/b/k?partNumber=${part}&uploadId=u`), 'InvalidArgument', 400);
    },
  );

  it('refuses half an UploadPart', () => {
    refused(() => route('PUT', '/b/k?partNumber=1'), 'InvalidArgument', 400);
    refused(() => route('PUT', '/b/k?uploadId=u'), 'InvalidArgument', 400);
  });

  it('decodes the query, + as a space, first value winning', () => {
    const { query } = route('GET', '/b?list-type=2&prefix=a+b%2Bc&prefix=second&delimiter=%2F');
    expect(query.get('prefix')).toBe('a b+c');
    expect(query.get('delimiter')).toBe('/');
  });
});

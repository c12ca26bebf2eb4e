import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { AwsChunkedDecoder } from './aws-chunked.js';
import { bodyDecoder, storedContentEncoding } from './body-decoder.js';
import { ChecksumVerifier } from './checksums.js';
import { S3Error } from './s3-errors.js';

const unsigned = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

function refused(headers: IncomingHttpHeaders, code: string, status: number, message: RegExp) {
  let error: unknown;
  try {
    bodyDecoder(headers);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(S3Error);
  expect(error).toMatchObject({ code, status });
  expect((error as Error).message).toMatch(message);
}

describe('bodyDecoder', () => {
  it('picks the stage for the body', () => {
    const trailer = { 'x-amz-content-sha256': unsigned, 'x-amz-trailer': 'x-amz-checksum-crc32' };
    expect(bodyDecoder(trailer)).toBeInstanceOf(AwsChunkedDecoder);
    expect(bodyDecoder({ 'x-amz-checksum-crc32': 'AAAAAA==' })).toBeInstanceOf(ChecksumVerifier);
    expect(bodyDecoder({ 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' })).toBeUndefined();
    expect(bodyDecoder({})).toBeUndefined();
  });

  it('refuses CRC64NVME and unknown checksums, in a trailer or a header', () => {
    const trailer = (name: string) => ({ 'x-amz-content-sha256': unsigned, 'x-amz-trailer': name });
    refused(
      trailer('x-amz-checksum-crc64nvme'),
      'InvalidArgument',
      400,
      /CRC64NVME.*not supported/,
    );
    refused(
      { 'x-amz-checksum-crc64nvme': 'AAAAAAAAAAA=' },
      'InvalidArgument',
      400,
      /not supported/,
    );
    refused(trailer('x-amz-checksum-md5'), 'InvalidArgument', 400, /unknown checksum/);
    refused(trailer('x-amz-meta-color'), 'InvalidArgument', 400, /unsupported x-amz-trailer/);
  });

  it('refuses two checksums, or one of the wrong size', () => {
    const sha1 = createHash('sha1').digest('base64');
    refused(
      { 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-checksum-sha1': sha1 },
      'InvalidRequest',
      400,
      /single/,
    );
    refused(
      {
        'x-amz-content-sha256': unsigned,
        'x-amz-trailer': 'x-amz-checksum-sha1',
        'x-amz-checksum-sha1': sha1,
      },
      'InvalidRequest',
      400,
      /single/,
    );
    refused({ 'x-amz-checksum-crc32': 'AAAA' }, 'InvalidRequest', 400, /not a valid crc32/);
    refused({ 'x-amz-checksum-sha256': sha1 }, 'InvalidRequest', 400, /not a valid sha256/);
  });

  it('refuses a trailer without its mode, a trailer mode without its trailer', () => {
    refused(
      { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-trailer': 'x-amz-checksum-crc32' },
      'InvalidRequest',
      400,
      /x-amz-trailer/,
    );
    refused(
      {
        'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'x-amz-trailer': 'x-amz-checksum-crc32',
      },
      'InvalidRequest',
      400,
      /does not go with/,
    );
    refused({ 'x-amz-content-sha256': unsigned }, 'InvalidRequest', 400, /needs an x-amz-trailer/);
  });

  it('refuses SigV4a streaming with 501 and a decoded length that is not one with 400', () => {
    refused(
      { 'x-amz-content-sha256': 'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD' },
      'NotImplemented',
      501,
      /ECDSA/,
    );
    refused(
      {
        'x-amz-content-sha256': unsigned,
        'x-amz-trailer': 'x-amz-checksum-crc32',
        'x-amz-decoded-content-length': '12a',
      },
      'InvalidArgument',
      400,
      /x-amz-decoded-content-length/,
    );
  });
});

describe('storedContentEncoding', () => {
  it('drops aws-chunked and keeps the rest', () => {
    expect(storedContentEncoding('aws-chunked')).toBeUndefined();
    expect(storedContentEncoding('gzip,aws-chunked')).toBe('gzip');
    expect(storedContentEncoding('aws-chunked, br')).toBe('br');
    expect(storedContentEncoding('AWS-Chunked')).toBeUndefined();
    expect(storedContentEncoding(undefined)).toBeUndefined();
  });
});

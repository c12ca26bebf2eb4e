/**
 * What an S3 upload body (PutObject, UploadPart) needs to become the object's
 * bytes, verified, read from its request's headers: `x-amz-content-sha256`
 * (an aws-chunked mode or not), `x-amz-decoded-content-length`,
 * `x-amz-trailer` and `x-amz-checksum-<alg>`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import {
  AwsChunkedDecoder,
  STREAMING_MODES,
  type AwsChunkedOptions,
  type StreamingMode,
  type StreamingSignature,
} from './aws-chunked.js';
import { ChecksumVerifier, algorithmOf, requestChecksum } from './checksums.js';
import { S3Error } from './s3-errors.js';

/**
 * The stage that turns an S3 upload body (PutObject, UploadPart) into the
 * object's bytes, verified, from its request's headers: an AwsChunkedDecoder
 * for a streaming body, a ChecksumVerifier for a plain body with an
 * `x-amz-checksum-<alg>` header, undefined for a plain body without one.
 * Throws an S3Error for headers that cannot go together.
 */
export function bodyDecoder(
  headers: IncomingHttpHeaders,
  signing?: StreamingSignature,
): Transform | undefined {
  const mode = single(headers['x-amz-content-sha256']) ?? '';
  if (STREAMING_MODES.includes(mode)) {
    return new AwsChunkedDecoder(awsChunkedOptions(mode as StreamingMode, headers, signing));
  }
  if (mode.startsWith('STREAMING-')) {
    throw new S3Error('NotImplemented', `x-amz-content-sha256 ${mode} is not supported`);
  }
  if (headers['x-amz-trailer'] !== undefined) {
    throw new S3Error('InvalidRequest', `x-amz-trailer needs a streaming body with a trailer`);
  }
  const checksum = requestChecksum(headers);
  return checksum && new ChecksumVerifier(checksum);
}

function awsChunkedOptions(
  mode: StreamingMode,
  headers: IncomingHttpHeaders,
  signing: StreamingSignature | undefined,
): AwsChunkedOptions {
  const length = single(headers['x-amz-decoded-content-length']);
  if (length !== undefined && !/^\d{1,15}$/.test(length)) {
    throw new S3Error('InvalidArgument', 'x-amz-decoded-content-length is not a length');
  }
  const inHeader = requestChecksum(headers);
  const trailer = single(headers['x-amz-trailer'])?.trim().toLowerCase();
  if (mode.endsWith('-TRAILER') && trailer === undefined) {
    throw new S3Error('InvalidRequest', `${mode} needs an x-amz-trailer header`);
  }
  if (!mode.endsWith('-TRAILER') && trailer !== undefined) {
    throw new S3Error('InvalidRequest', `x-amz-trailer does not go with ${mode}`);
  }
  if (trailer !== undefined && !trailer.startsWith('x-amz-checksum-')) {
    throw new S3Error('InvalidArgument', `unsupported x-amz-trailer ${JSON.stringify(trailer)}`);
  }
  if (trailer !== undefined && inHeader) {
    throw new S3Error('InvalidRequest', 'expecting a single x-amz-checksum- header or trailer');
  }
  return {
    mode,
    signing,
    decodedLength: length === undefined ? undefined : Number(length),
    checksum: trailer !== undefined ? { algorithm: algorithmOf(trailer) } : inHeader,
  };
}

/** The Content-Encoding to store with the object: the request's, minus `aws-chunked`. */
export function storedContentEncoding(header: string | undefined): string | undefined {
  const rest = (header ?? '')
    .split(',')
    .map((coding) => coding.trim())
    .filter((coding) => coding !== '' && coding.toLowerCase() !== 'aws-chunked');
  return rest.length > 0 ? rest.join(', ') : undefined;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

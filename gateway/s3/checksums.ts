/**
 * S3's additional checksums (`x-amz-checksum-<alg>`): the algorithms, the one
 * a request announces in a header, and a pass-through stage that checks a
 * plain body against it. aws-chunked.ts checks trailing checksums with them.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { S3Error } from './s3-errors.js';

export type ChecksumAlgorithm = 'crc32' | 'crc32c' | 'sha1' | 'sha256';

const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = {
  crc32: 4,
  crc32c: 4,
  sha1: 20,
  sha256: 32,
};

/** A running checksum over a body; `digest()` once, at its end. */
export interface Checksum {
  update(data: Buffer): void;
  digest(): Buffer;
}

/** A checksum a client announced: its algorithm and its value (base64, as on the wire). */
export interface ExpectedChecksum {
  algorithm: ChecksumAlgorithm;
  value: string;
}

export function createChecksum(algorithm: ChecksumAlgorithm): Checksum {
  switch (algorithm) {
    case 'crc32': {
      // zlib's native CRC32, not @aws-crypto/crc32: about 50 times faster on large bodies.
      let crc = 0;
      return crcChecksum((data) => (crc = crc32(data, crc)));
    }
    case 'crc32c': {
      const crc = new Crc32c();
      return crcChecksum((data) => crc.update(data).digest());
    }
    case 'sha1':
    case 'sha256': {
      const hash = createHash(algorithm);
      return { update: (data) => void hash.update(data), digest: () => hash.digest() };
    }
  }
}

/** `update` returns the CRC so far; CRCs go on the wire as 4 big-endian bytes. */
function crcChecksum(update: (data: Buffer) => number): Checksum {
  let crc = 0;
  return {
    update: (data) => void (crc = update(data)),
    digest: () => {
      const out = Buffer.allocUnsafe(4);
      out.writeUInt32BE(crc >>> 0);
      return out;
    },
  };
}

/** The algorithm of a checksum header or trailer name (`x-amz-checksum-crc32` → `crc32`). */
export function algorithmOf(name: string): ChecksumAlgorithm {
  const alg = name.toLowerCase().replace(/^x-amz-checksum-/, '');
  if (alg in DIGEST_BYTES) return alg as ChecksumAlgorithm;
  if (alg === 'crc64nvme') {
    throw new S3Error('InvalidArgument', 'the CRC64NVME checksum is not supported; use CRC32');
  }
  throw new S3Error('InvalidArgument', `unknown checksum ${JSON.stringify(name)}`);
}

/** Every header name that carries a checksum value (S3 also has `-type` and `-mode`, which do not). */
const CHECKSUM_HEADERS = ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'].map(
  (alg) => `x-amz-checksum-${alg}`,
);

/** The checksum a request announces in an `x-amz-checksum-<alg>` header, if any. */
export function requestChecksum(headers: IncomingHttpHeaders): ExpectedChecksum | undefined {
  const present = CHECKSUM_HEADERS.filter((name) => headers[name] !== undefined);
  if (present.length > 1) {
    throw new S3Error('InvalidRequest', 'expecting a single x-amz-checksum- header');
  }
  const name = present[0];
  if (name === undefined) return undefined;
  const algorithm = algorithmOf(name);
  const value = String(headers[name]).trim();
  // Refused before the body is read: a value of the wrong size can never match.
  decodeDigest(algorithm, value, name);
  return { algorithm, value };
}

function decodeDigest(algorithm: ChecksumAlgorithm, value: string, where: string): Buffer {
  const digest = Buffer.from(value, 'base64');
  if (digest.length !== DIGEST_BYTES[algorithm] || digest.toString('base64') !== value) {
    throw new S3Error('InvalidRequest', `the value of ${where} is not a valid ${algorithm}`);
  }
  return digest;
}

/** Throws 400 BadDigest unless `checksum`, now complete, is the one the client announced. */
export function verifyChecksum(checksum: Checksum, expected: ExpectedChecksum): void {
  const name = `x-amz-checksum-${expected.algorithm}`;
  const actual = checksum.digest();
  if (!actual.equals(decodeDigest(expected.algorithm, expected.value, name))) {
    throw new S3Error(
      'BadDigest',
      `the ${expected.algorithm} of the body is ${actual.toString('base64')}, not the ${expected.value} of ${name}`,
    );
  }
}

/**
 * Passes a plain (not aws-chunked) body through unchanged and fails before
 * its end if it does not match the checksum of its request's header, so the
 * consumer never commits a corrupt object.
 */
export class ChecksumVerifier extends Transform {
  private readonly checksum: Checksum;

  constructor(private readonly expected: ExpectedChecksum) {
    super();
    this.checksum = createChecksum(expected.algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.checksum.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    try {
      verifyChecksum(this.checksum, this.expected);
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

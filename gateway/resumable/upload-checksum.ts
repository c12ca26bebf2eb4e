/**
 * The tus checksum extension: a PATCH may carry `Upload-Checksum: <algorithm>
 * <base64 digest>` of its body; a body that does not match is discarded and
 * answered 460. @tus/server does not implement it, so Trove does, here.
 */
import { createHash, type Hash } from 'node:crypto';
import { BadRequestError, TroveError } from '../../shared/errors.js';

/** What `Tus-Checksum-Algorithm` announces (names as tus writes them, Node's hash names too). */
export const CHECKSUM_ALGORITHMS = ['sha1', 'sha256', 'md5'] as const;

export interface ExpectedChecksum {
  algorithm: (typeof CHECKSUM_ALGORITHMS)[number];
  /** The digest, base64 as sent. */
  digest: string;
}

/** Parses an Upload-Checksum header; 400 when it is malformed or names an algorithm not offered. */
export function parseUploadChecksum(
  header: string | undefined | null,
): ExpectedChecksum | undefined {
  if (header === undefined || header === null) return undefined;
  const match = /^([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})$/.exec(header.trim());
  if (!match)
    throw new BadRequestError(
      'Upload-Checksum must be "<algorithm> <base64 digest>"',
      'INVALID_CHECKSUM',
    );
  const algorithm = match[1] as ExpectedChecksum['algorithm'];
  if (!CHECKSUM_ALGORITHMS.includes(algorithm))
    throw new BadRequestError(
      `Upload-Checksum algorithm "${match[1]}" is not supported; use one of ${CHECKSUM_ALGORITHMS.join(', ')}`,
      'UNSUPPORTED_CHECKSUM_ALGORITHM',
    );
  return { algorithm, digest: match[2]! };
}

/** 460 Checksum Mismatch (tus checksum extension): the request's bytes were discarded. */
export class ChecksumMismatchError extends TroveError {
  constructor(algorithm: string) {
    super(
      'CHECKSUM_MISMATCH',
      460,
      `the body does not match its Upload-Checksum (${algorithm}); it was discarded, send it again`,
    );
  }
}

/** Hashes a request's body as it passes, to compare with its Upload-Checksum at the end. */
export class ChecksumCheck {
  private readonly hash: Hash;

  constructor(private readonly expected: ExpectedChecksum) {
    this.hash = createHash(expected.algorithm);
  }

  update(chunk: Buffer): void {
    this.hash.update(chunk);
  }

  /** Throws ChecksumMismatchError unless the bytes seen match. */
  verify(): void {
    if (this.hash.digest('base64') !== this.expected.digest)
      throw new ChecksumMismatchError(this.expected.algorithm);
  }
}

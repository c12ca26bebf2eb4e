import { createHash, randomBytes } from 'node:crypto';
import { Crc32 } from '@aws-crypto/crc32';
import { describe, expect, it } from 'vitest';
import { createChecksum, type ChecksumAlgorithm } from './checksums.js';

function checksumOf(algorithm: ChecksumAlgorithm, pieces: Buffer[]): string {
  const checksum = createChecksum(algorithm);
  for (const piece of pieces) checksum.update(piece);
  return checksum.digest().toString('hex');
}

describe('createChecksum', () => {
  it('gives the catalogued check values of CRC32 and CRC32C (of "123456789")', () => {
    const check = [Buffer.from('1234'), Buffer.from('56789')];
    expect(checksumOf('crc32', check)).toBe('cbf43926');
    expect(checksumOf('crc32c', check)).toBe('e3069283');
    expect(checksumOf('crc32', [])).toBe('00000000');
    expect(checksumOf('crc32c', [])).toBe('00000000');
  });

  it('computes CRC32 as @aws-crypto/crc32 does, across updates', () => {
    const data = randomBytes(100_000);
    const pieces = [data.subarray(0, 1), data.subarray(1, 60_000), data.subarray(60_000)];
    const expected = (new Crc32().update(data).digest() >>> 0).toString(16).padStart(8, '0');
    expect(checksumOf('crc32', pieces)).toBe(expected);
  });

  it('computes SHA-1 and SHA-256 across updates', () => {
    const data = randomBytes(10_000);
    const pieces = [data.subarray(0, 4000), data.subarray(4000)];
    for (const algorithm of ['sha1', 'sha256'] as const) {
      expect(checksumOf(algorithm, pieces)).toBe(createHash(algorithm).update(data).digest('hex'));
    }
  });
});

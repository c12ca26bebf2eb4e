import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChecksumMismatchError } from '../shared/errors.js';
import { VerifiedRange } from './verified-range.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31 + 7) & 0xff));

function split(buf: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) chunks.push(buf.subarray(i, i + size));
  return chunks;
}

/** Feeds `chunks` through a VerifiedRange and records what came out before it ended or failed. */
async function run(
  chunks: Buffer[],
  expected: string,
  range: { start: number; end: number },
): Promise<{ out: Buffer; error: unknown }> {
  const verify = new VerifiedRange(expected, range);
  // Flowing mode: every pushed chunk is seen at once, none is lost in a buffer when the stream fails.
  const received: Buffer[] = [];
  verify.on('data', (chunk: Buffer) => received.push(chunk));
  const error = await new Promise<unknown>((resolve) => {
    verify.once('end', () => resolve(undefined));
    verify.once('error', resolve);
    Readable.from(chunks).pipe(verify);
  });
  return { out: Buffer.concat(received), error };
}

const ranges = [
  { start: 0, end: 999 },
  { start: 0, end: 0 },
  { start: 999, end: 999 },
  { start: 3, end: 9 },
  { start: 6, end: 7 },
  { start: 7, end: 13 },
  { start: 100, end: 899 },
  { start: 500, end: 999 },
];

describe('VerifiedRange', () => {
  for (const size of [1, 7, data.length]) {
    it(`passes exactly the range bytes when fed ${size}-byte chunks`, async () => {
      for (const range of ranges) {
        const { out, error } = await run(split(data, size), sha256(data), range);
        expect(error, JSON.stringify(range)).toBeUndefined();
        expect(out.equals(data.subarray(range.start, range.end + 1)), JSON.stringify(range)).toBe(
          true,
        );
      }
    });
  }

  for (const size of [1, 7, 64, data.length]) {
    it(`holds back the end of the range when the hash fails (${size}-byte chunks)`, async () => {
      const bad = sha256(Buffer.from('not the data'));
      for (const range of ranges) {
        const { out, error } = await run(split(data, size), bad, range);
        expect(error, JSON.stringify(range)).toBeInstanceOf(ChecksumMismatchError);
        expect(out.length, JSON.stringify(range)).toBeLessThan(range.end - range.start + 1);
        // What did get out is a true prefix of the range, never other bytes.
        expect(out.equals(data.subarray(range.start, range.start + out.length))).toBe(true);
      }
    });
  }

  it('sends nothing of a range inside the first chunk when the hash fails', async () => {
    const chunks = split(data, 256);
    const { out, error } = await run(chunks, sha256(Buffer.alloc(0)), { start: 10, end: 200 });
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect(out.length).toBe(0);
  });

  it('fails when a byte outside the range differs from the hashed blob', async () => {
    const tampered = Buffer.from(data);
    tampered[900]! ^= 0xff;
    const { out, error } = await run(split(tampered, 100), sha256(data), { start: 0, end: 99 });
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect(out.length).toBe(0);
  });

  it('ends an empty range on empty input when the hash matches', async () => {
    const { out, error } = await run([], sha256(Buffer.alloc(0)), { start: 0, end: -1 });
    expect(error).toBeUndefined();
    expect(out.length).toBe(0);
  });

  it('fails an empty input whose hash is not the empty hash', async () => {
    const { error } = await run([], sha256(data), { start: 0, end: -1 });
    expect(error).toBeInstanceOf(ChecksumMismatchError);
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { flipByte } from '../test/disk-faults.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BLOCK_SIZE,
  BlockDigester,
  CorruptSumsError,
  SumsFile,
  encodeSums,
  needsSums,
} from './block-sums.js';

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest();

/** The block digests computed the plain way: one hash per block. */
function expectedDigests(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += BLOCK_SIZE)
    out.push(sha(data.subarray(at, at + BLOCK_SIZE)));
  return out;
}

function digestIn(data: Buffer, chunk: number) {
  const digester = new BlockDigester();
  for (let at = 0; at < data.length; at += chunk) digester.update(data.subarray(at, at + chunk));
  return digester.finish();
}

describe('BlockDigester', () => {
  const sizes = [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 5];
  // Chunks smaller than a block, straddling its boundaries, and larger than a block.
  for (const chunk of [1000, 65_536, 3 * BLOCK_SIZE + 7]) {
    it(`gives the blob's sha256 and each block's sha256 in one pass (${chunk}-byte chunks)`, () => {
      for (const size of sizes) {
        const data = randomBytes(size);
        const got = digestIn(data, chunk);
        expect(got.size, `size ${size}`).toBe(size);
        expect(got.sha256, `size ${size}`).toBe(sha(data).toString('hex'));
        expect(
          got.digests.map((d) => d.toString('hex')),
          `size ${size}`,
        ).toEqual(expectedDigests(data).map((d) => d.toString('hex')));
      }
    });
  }

  it('only blobs over one block need sums', () => {
    expect(needsSums(0)).toBe(false);
    expect(needsSums(BLOCK_SIZE)).toBe(false);
    expect(needsSums(BLOCK_SIZE + 1)).toBe(true);
  });
});

describe('SumsFile', () => {
  let dir: string;
  let path: string;
  const opened: SumsFile[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trove-sums-'));
    path = join(dir, 'blob@x.blocks');
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  /** A sidecar for a blob of `size` bytes with made-up digests (no blob data needed). */
  async function writeSums(size: number) {
    const blocks = Math.ceil(size / BLOCK_SIZE);
    const digests = Array.from({ length: blocks }, (_, i) => sha(Buffer.from(`block ${i}`)));
    const owner = { size, sha256: sha(Buffer.from(`blob of ${size}`)).toString('hex') };
    await writeFile(path, encodeSums(owner.sha256, size, digests));
    return { owner, digests };
  }

  async function openSums(owner: { size: number; sha256: string }) {
    const sums = await SumsFile.open(path, owner);
    if (sums) opened.push(sums);
    return sums;
  }

  it('answers every digest, in any order, reading them a batch at a time', async () => {
    // 2500 blocks: more than one batch of digests (1024).
    const { owner, digests } = await writeSums(2500 * BLOCK_SIZE - 3);
    let bytesRead = 0;
    const sums = await SumsFile.open(path, owner, (n) => (bytesRead += n));
    opened.push(sums!);
    expect(sums!.blocks).toBe(2500);
    expect(sums!.blockSize).toBe(BLOCK_SIZE);
    for (const i of [0, 1, 1023, 1024, 2499, 5, 2000]) {
      expect((await sums!.digest(i)).equals(digests[i]!), `block ${i}`).toBe(true);
    }
    // The header plus a few batches, never the whole 80 KB for each digest.
    expect(bytesRead).toBeLessThan(5 * 1024 * 32 + 100);
    expect(await sums!.intact()).toBe(true);
    await expect(sums!.digest(2500)).rejects.toThrow(RangeError);
  });

  it('is undefined when the blob has no sidecar', async () => {
    expect(await SumsFile.open(join(dir, 'none.blocks'), { size: 5, sha256: 'a'.repeat(64) })).toBe(
      undefined,
    );
  });

  it('refuses a sidecar whose header or length does not fit the blob', async () => {
    const { owner } = await writeSums(3 * BLOCK_SIZE);
    await expect(openSums({ ...owner, size: owner.size + 1 })).rejects.toThrow(CorruptSumsError);
    await expect(openSums({ ...owner, sha256: 'b'.repeat(64) })).rejects.toThrow(CorruptSumsError);
    await flipByte(path, 2); // the magic
    await expect(openSums(owner)).rejects.toThrow(/bad magic/);
    await writeSums(3 * BLOCK_SIZE);
    await truncate(path, 52 + 2 * 32); // cut inside the digests
    await expect(openSums(owner)).rejects.toThrow(/bytes, expected/);
    await writeFile(path, '');
    await expect(openSums(owner)).rejects.toThrow(/short header/);
  });

  it('tells a damaged digest or trailer by its trailer', async () => {
    const { owner, digests } = await writeSums(3 * BLOCK_SIZE);
    await flipByte(path, 52 + 32 + 4); // inside block 1's digest
    const sums = await openSums(owner);
    expect((await sums!.digest(1)).equals(digests[1]!)).toBe(false);
    expect(await sums!.intact()).toBe(false);

    await writeSums(3 * BLOCK_SIZE);
    await flipByte(path, 52 + 3 * 32 + 31); // the trailer's last byte
    expect(await (await openSums(owner))!.intact()).toBe(false);
  });
});

/**
 * StagingStore against a real FsBlobStore in a temp directory: parts written
 * at their offsets become a blob by a rename, with the sha256 and block sums
 * a PUT of the same bytes gets, whether the digest was kept while the parts
 * came (in order) or is read back from disk (after a restart); a gap, a part
 * sent again, a failed part, a cut and a commit that does not match.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../shared/logger.js';
import type { StagedPart } from '../shared/node-protocol.js';
import { FsBlobStore } from './blob-store.js';
import { BlockDigester } from './block-sums.js';
import { StagingGapError, StagingMismatchError, StagingStore } from './staging-store.js';

const log = createLogger('node-test', 'silent');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const KEY = 'AAAAAAAAAAAAAAAAAAAAAA.tus-upload1';

let dir: string;
let blobs: FsBlobStore;
let staging: StagingStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trove-staging-'));
  blobs = await FsBlobStore.open(dir);
  staging = await StagingStore.open(dir, blobs, log);
});

afterEach(async () => {
  await staging.close();
  await blobs.close();
  await rm(dir, { recursive: true, force: true });
});

/** Sends `data` as parts of `size` bytes (the last shorter), in order; answers what the node recorded. */
async function writeParts(data: Buffer, size: number, store = staging): Promise<StagedPart[]> {
  const parts: StagedPart[] = [];
  for (let at = 0; at < data.length; at += size) {
    const part = data.subarray(at, at + size);
    parts.push(await store.write(KEY, at, Readable.from(chunks(part))));
  }
  return parts;
}

/** The bytes in uneven chunks, as a network delivers them. */
function* chunks(data: Buffer): Generator<Buffer> {
  for (let at = 0; at < data.length; at += 100_003) yield data.subarray(at, at + 100_003);
}

async function readBlob(key: string): Promise<Buffer> {
  const read = await blobs.get(key);
  const out: Buffer[] = [];
  for await (const chunk of read!.stream) out.push(chunk as Buffer);
  return Buffer.concat(out);
}

function blockDigestsOf(data: Buffer): Buffer[] {
  const d = new BlockDigester();
  d.update(data);
  return d.finish().digests;
}

async function stagedFiles(): Promise<string[]> {
  return readdir(join(dir, 'staging'));
}

describe('StagingStore', () => {
  it('commits parts sent in order by a rename, with the sha256 and block sums of the bytes', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 12_345);
    const parts = await writeParts(data, 1024 * 1024 + 7); // not on block boundaries
    expect(parts.map((p) => p.sha256)).toEqual(
      parts.map((p) => sha256(data.subarray(p.offset, p.offset + p.size))),
    );
    const info = await staging.commit(KEY, 'file1', parts);
    expect(info).toMatchObject({ key: 'file1', size: data.length, sha256: sha256(data) });
    expect(await stagedFiles()).toEqual([]);
    expect(sha256(await readBlob('file1'))).toBe(sha256(data));
    expect(await blobs.blockDigests('file1')).toEqual(blockDigestsOf(data));
    // A range read checks only its blocks, against those sums.
    const range = await blobs.get('file1', () => ({ start: 3_000_000, end: 3_000_099 }));
    const out: Buffer[] = [];
    for await (const chunk of range!.stream) out.push(chunk as Buffer);
    expect(Buffer.concat(out).equals(data.subarray(3_000_000, 3_000_100))).toBe(true);
    // Done already: the same answer, nothing else happens.
    expect(await staging.commit(KEY, 'file1', parts)).toMatchObject({ sha256: sha256(data) });
  });

  it('commits after a restart by reading the staged file back once', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const parts = await writeParts(data, 1024 * 1024);
    const again = await StagingStore.open(dir, blobs, log); // nothing in memory
    const info = await again.commit(KEY, 'file2', parts);
    expect(info.sha256).toBe(sha256(data));
    expect(await blobs.blockDigests('file2')).toEqual(blockDigestsOf(data));
    expect(sha256(await readBlob('file2'))).toBe(sha256(data));
  });

  it('a part sent again at the same offset replaces the last one, and continues the digest', async () => {
    const first = randomBytes(2 * 1024 * 1024);
    const wrong = randomBytes(1024 * 1024);
    const right = randomBytes(512 * 1024);
    const p0 = await staging.write(KEY, 0, Readable.from([first]));
    await staging.write(KEY, first.length, Readable.from([wrong])); // the gateway did not count it
    const p1 = await staging.write(KEY, first.length, Readable.from([right]));
    const info = await staging.commit(KEY, 'file3', [p0, p1]);
    const whole = Buffer.concat([first, right]);
    expect(info).toMatchObject({ size: whole.length, sha256: sha256(whole) });
    expect(sha256(await readBlob('file3'))).toBe(sha256(whole));
  });

  it('refuses a part past the staged end (a gap), creating nothing', async () => {
    await expect(staging.write(KEY, 10, Readable.from([Buffer.from('x')]))).rejects.toEqual(
      new StagingGapError(0, 10),
    );
    expect(await stagedFiles()).toEqual([]);
    await staging.write(KEY, 0, Readable.from([Buffer.from('abc')]));
    const gap = staging.write(KEY, 5, Readable.from([Buffer.from('x')]));
    await expect(gap).rejects.toBeInstanceOf(StagingGapError);
    await expect(gap).rejects.toMatchObject({ have: 3, status: 409 });
  });

  it('a part whose body fails leaves the file as it was', async () => {
    const head = randomBytes(1000);
    const p0 = await staging.write(KEY, 0, Readable.from([head]));
    let reads = 0;
    const failing = new Readable({
      read() {
        if (reads++ === 0) this.push(randomBytes(5000));
        else this.destroy(new Error('client gone')); // while the store reads it
      },
    });
    await expect(staging.write(KEY, 1000, failing)).rejects.toThrow('client gone');
    expect((await stat(join(dir, 'staging', KEY))).size).toBe(1000);
    const tail = randomBytes(300);
    const p1 = await staging.write(KEY, 1000, Readable.from([tail]));
    const info = await staging.commit(KEY, 'file4', [p0, p1]);
    expect(info.sha256).toBe(sha256(Buffer.concat([head, tail])));
  });

  it('refuses a commit whose parts the staged bytes are not, and commits nothing', async () => {
    const data = randomBytes(4096);
    const parts = await writeParts(data, 1024);
    // Short: the node missed the last part.
    await expect(
      staging.commit(KEY, 'f', [...parts, { offset: 4096, size: 10, sha256: 'a'.repeat(64) }]),
    ).rejects.toMatchObject({ code: 'STAGING_MISMATCH', have: 4096 });
    // A part's bytes differ from what the gateway recorded (read from disk after a restart too).
    const other = { ...parts[2]!, sha256: sha256(Buffer.from('other')) };
    const wrong = [parts[0]!, parts[1]!, other, parts[3]!];
    await expect(staging.commit(KEY, 'f', wrong)).rejects.toBeInstanceOf(StagingMismatchError);
    const again = await StagingStore.open(dir, blobs, log);
    await expect(again.commit(KEY, 'f', wrong)).rejects.toMatchObject({ have: 2048 });
    // Bytes changed on disk behind the store's back: the read-back check sees it.
    await writeFile(join(dir, 'staging', KEY), Buffer.alloc(4096));
    await expect(again.commit(KEY, 'f', parts)).rejects.toMatchObject({ have: 0 });
    expect(await blobs.stat('f')).toBeUndefined();
    expect(await stagedFiles()).toEqual([KEY]);
  });

  it('cuts a part that did not count, and removes the file when cut to 0', async () => {
    const data = randomBytes(3000);
    const parts = await writeParts(data, 1000);
    await staging.cut(KEY, 2000);
    expect((await stat(join(dir, 'staging', KEY))).size).toBe(2000);
    const info = await staging.commit(KEY, 'file5', parts.slice(0, 2));
    expect(info.sha256).toBe(sha256(data.subarray(0, 2000)));
    await staging.write(KEY, 0, Readable.from([data]));
    await staging.cut(KEY, 0);
    expect(await stagedFiles()).toEqual([]);
    expect(await staging.delete(KEY)).toBe(false);
  });

  it('lists and deletes staged files', async () => {
    await staging.write(KEY, 0, Readable.from([Buffer.from('hello')]));
    expect(await staging.list()).toEqual([
      { key: KEY, size: 5, mtimeMs: expect.any(Number) as number },
    ]);
    expect(await staging.delete(KEY)).toBe(true);
    expect(await staging.list()).toEqual([]);
  });
});

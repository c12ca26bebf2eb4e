import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { flipByte } from '../test/disk-faults.js';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChecksumMismatchError, CorruptBlobError } from '../shared/errors.js';
import { FsBlobStore } from './blob-store.js';
import { BlockChecksumError } from './block-range.js';
import { BLOCK_SIZE, CorruptSumsError } from './block-sums.js';

const BS = BLOCK_SIZE;
/** Sidecar bytes a ranged read reads besides blocks: its header and one batch of digests. */
const sumsReadFor = (blocks: number, first: number) => 52 + Math.min(1024, blocks - first) * 32;

let root: string;
let store: FsBlobStore;
let logLines: { level: number; msg: string; [k: string]: unknown }[];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'trove-blocks-'));
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        logLines.push(JSON.parse(line));
      done();
    },
  });
  store = await FsBlobStore.open(root, { log: pino({ level: 'info' }, sink) });
});
afterEach(async () => {
  await store.close();
  await rm(root, { recursive: true, force: true });
});

/** `data` as a stream of 64 KiB pieces, never one buffer. */
function chunked(data: Buffer, chunk = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
    })(),
  );
}

/** A ranged read: what it delivered before it ended or failed, and the bytes it read from disk. */
async function readRange(key: string, range?: { start: number; end: number }) {
  const before = store.bytesReadFromDisk();
  const read = await store.get(key, range && (() => range));
  expect(read, key).toBeDefined();
  const chunks: Buffer[] = [];
  const error = await new Promise<unknown>((resolve) => {
    read!.stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    read!.stream.once('end', () => resolve(undefined));
    read!.stream.once('error', resolve);
  });
  // The read's files close once the stream does: only then is its count complete.
  if (!read!.stream.destroyed) await new Promise((r) => read!.stream.once('close', r));
  return { data: Buffer.concat(chunks), error, diskBytes: store.bytesReadFromDisk() - before };
}

async function filesIn(dir: string): Promise<string[]> {
  const entries = await readdir(join(root, dir), { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => e.name);
}

async function putBlob(key: string, size: number): Promise<{ data: Buffer; path: string }> {
  const data = randomBytes(size);
  const info = await store.put(key, chunked(data));
  return { data, path: store.pathOf(info) };
}

/** Waits (bounded) for the quarantine a failed stream triggers just after it fails. */
async function quarantined(count: number): Promise<string[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const files = await filesIn('quarantine');
    if (files.length >= count || Date.now() > deadline) return files;
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ranged reads verified by block', () => {
  it('serves ranges across block boundaries, first and last bytes, reading only the blocks touched', async () => {
    const size = 5 * BS + 12_345;
    const blocks = 6;
    const { data } = await putBlob('big', size);
    const cases = [
      { start: 0, end: 0 },
      { start: size - 1, end: size - 1 },
      { start: BS - 1, end: BS }, // two bytes, two blocks
      { start: BS - 10, end: 3 * BS + 10 },
      { start: 2 * BS, end: 3 * BS - 1 }, // exactly one block
      { start: 4 * BS + 77, end: size - 1 }, // into the short last block
      { start: 0, end: size - 1 },
    ];
    for (const range of cases) {
      const what = JSON.stringify(range);
      const got = await readRange('big', range);
      expect(got.error, what).toBeUndefined();
      expect(got.data.equals(data.subarray(range.start, range.end + 1)), what).toBe(true);
      const first = Math.floor(range.start / BS);
      const last = Math.floor(range.end / BS);
      let blockBytes = 0;
      for (let b = first; b <= last; b++) blockBytes += Math.min(BS, size - b * BS);
      expect(got.diskBytes, what).toBe(blockBytes + sumsReadFor(blocks, first));
    }
    expect(await filesIn('quarantine')).toEqual([]);
  });

  it('fails at a corrupt block inside the range, sending none of it, and quarantines blob and sums', async () => {
    const { data, path } = await putBlob('rotten', 4 * BS);
    await flipByte(path, 2 * BS + 1000);
    const range = { start: BS - 5, end: 2 * BS + 100 };
    const got = await readRange('rotten', range);
    expect(got.error).toBeInstanceOf(BlockChecksumError);
    expect(got.error).toBeInstanceOf(ChecksumMismatchError);
    expect((got.error as BlockChecksumError).block).toBe(2);
    // Blocks 0 and 1 verified and went out; nothing of block 2 did.
    expect(got.data.equals(data.subarray(range.start, 2 * BS))).toBe(true);

    const aside = await quarantined(2);
    expect(aside.map((n) => n.replace(/\.\d+/, '.<t>')).sort()).toEqual([
      `${basename(path)}.<t>`,
      `${basename(path)}.<t>.blocks`,
    ]);
    expect(await filesIn('blobs')).toEqual([]);
    expect(await store.get('rotten')).toBeUndefined();
  });

  it('refuses a range whose first block is corrupt before any stream exists, and quarantines the blob', async () => {
    const { path } = await putBlob('rotten-start', 3 * BS + 1);
    await flipByte(path, BS + 7);
    // As for a small blob: the node can still answer 404 CORRUPT_BLOB, and the gateway reads another replica.
    await expect(store.get('rotten-start', () => ({ start: BS, end: BS }))).rejects.toThrow(
      CorruptBlobError,
    );
    expect(await filesIn('quarantine')).toHaveLength(2);
    expect(await store.get('rotten-start')).toBeUndefined();
  });

  it('serves a range clear of a corrupt block; a whole read still checks the whole sha256', async () => {
    const { data, path } = await putBlob('partly-rotten', 4 * BS);
    await flipByte(path, 3 * BS + 5);
    const range = { start: 10, end: 2 * BS - 1 };
    const got = await readRange('partly-rotten', range);
    expect(got.error).toBeUndefined();
    expect(got.data.equals(data.subarray(range.start, range.end + 1))).toBe(true);
    expect(await filesIn('quarantine')).toEqual([]);

    const whole = await readRange('partly-rotten');
    expect(whole.error).toBeInstanceOf(ChecksumMismatchError);
    expect(whole.data.length).toBeLessThan(data.length);
    expect(await quarantined(2)).toHaveLength(2);
  });

  it('a damaged digest fails the read but not the blob: the sums are dropped and the next read verifies it whole', async () => {
    const { data, path } = await putBlob('bad-sums', 3 * BS);
    await flipByte(`${path}.blocks`, 52 + 32 + 3); // block 1's digest
    const range = { start: BS - 1, end: BS + 9 };
    const got = await readRange('bad-sums', range);
    expect(got.error).toBeInstanceOf(CorruptSumsError);
    expect(got.data.equals(data.subarray(range.start, BS))).toBe(true); // block 0 only
    expect(logLines).toContainEqual(
      expect.objectContaining({ level: 40, key: 'bad-sums', msg: 'corrupt block sums dropped' }),
    );
    expect(await filesIn('blobs')).toEqual([basename(path)]); // the blob stays, its sums went
    expect(await filesIn('quarantine')).toEqual([]);

    const again = await readRange('bad-sums', range);
    expect(again.error).toBeUndefined();
    expect(again.data.equals(data.subarray(range.start, range.end + 1))).toBe(true);
    expect(again.diskBytes).toBe(data.length); // whole-blob verification
  });

  it("a damaged digest of the range's first block: the sums are dropped and this read verifies the whole blob", async () => {
    const { data, path } = await putBlob('bad-first-sum', 3 * BS);
    await flipByte(`${path}.blocks`, 52 + 2 * 32); // block 2's digest
    const range = { start: 2 * BS + 3, end: 2 * BS + 9 };
    const got = await readRange('bad-first-sum', range);
    expect(got.error).toBeUndefined();
    expect(got.data.equals(data.subarray(range.start, range.end + 1))).toBe(true);
    expect(got.diskBytes).toBeGreaterThan(data.length); // block 2, the sums, then the whole blob
    expect(await filesIn('blobs')).toEqual([basename(path)]);
    expect(await filesIn('quarantine')).toEqual([]);
    expect(logLines).toContainEqual(
      expect.objectContaining({
        level: 40,
        key: 'bad-first-sum',
        msg: 'corrupt block sums dropped',
      }),
    );
  });

  it('a sidecar with a damaged header is dropped at once and the read verifies the whole blob', async () => {
    const { data, path } = await putBlob('bad-header', 2 * BS + 5);
    await flipByte(`${path}.blocks`, 9); // the block size
    const range = { start: 2 * BS, end: 2 * BS + 4 };
    const got = await readRange('bad-header', range);
    expect(got.error).toBeUndefined();
    expect(got.data.equals(data.subarray(range.start, range.end + 1))).toBe(true);
    expect(got.diskBytes).toBeGreaterThanOrEqual(data.length);
    expect(await filesIn('blobs')).toEqual([basename(path)]);
    expect(logLines).toContainEqual(
      expect.objectContaining({ level: 40, msg: 'corrupt block sums dropped' }),
    );
  });

  it('a blob stored before block sums is read whole-verified, and a range fails on damage outside it', async () => {
    const { data, path } = await putBlob('old', 3 * BS);
    await rm(`${path}.blocks`);
    const range = { start: 10, end: 100_000 };
    const good = await readRange('old', range);
    expect(good.error).toBeUndefined();
    expect(good.data.equals(data.subarray(range.start, range.end + 1))).toBe(true);
    expect(good.diskBytes).toBe(data.length);
    expect(logLines).toEqual([]); // no sums is not damage

    await flipByte(path, data.length - 1);
    const bad = await readRange('old', range);
    expect(bad.error).toBeInstanceOf(ChecksumMismatchError);
    expect(bad.data.length).toBeLessThan(range.end - range.start + 1);
    expect(await quarantined(1)).toHaveLength(1);
    expect(await store.get('old')).toBeUndefined();
  });
});

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChecksumMismatchError, CorruptBlobError } from '../shared/errors.js';
import { FsBlobStore, type BlobStore } from './blob-store.js';
import { BLOCK_SIZE, SUMS_SUFFIX, encodeSums } from './block-sums.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Deterministic, non-repeating bytes, so a misplaced chunk changes the digest. */
function pattern(size: number, seed = 1): Buffer {
  const buf = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}

/** `data` as a stream of `chunk`-byte pieces from a generator, never one buffer. */
function chunked(data: Buffer, chunk = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
    })(),
  );
}

/** Everything a stream delivered before it ended or failed, seen chunk by chunk as it is pushed. */
async function drain(stream: Readable): Promise<{ data: Buffer; error: unknown }> {
  const chunks: Buffer[] = [];
  const error = await new Promise<unknown>((resolve) => {
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(undefined));
    stream.once('error', resolve);
  });
  return { data: Buffer.concat(chunks), error };
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** The contract every BlobStore keeps, whatever it stores bytes on. */
export function describeBlobStore(
  name: string,
  make: () => Promise<{ store: BlobStore; cleanup(): Promise<void> }>,
): void {
  describe(`BlobStore contract: ${name}`, () => {
    let store: BlobStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await make());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('round-trips a multi-chunk body with its sha256 and size', async () => {
      const data = pattern(1024 * 1024 + 12_345);
      const info = await store.put('big-one', chunked(data));
      expect(info).toMatchObject({ key: 'big-one', size: data.length, sha256: sha256(data) });

      const read = await store.get('big-one');
      expect(read).toBeDefined();
      expect(read!.info).toMatchObject({ key: 'big-one', size: data.length, sha256: sha256(data) });
      expect(read!.range).toBeUndefined();
      const { data: back, error } = await drain(read!.stream);
      expect(error).toBeUndefined();
      expect(sha256(back)).toBe(sha256(data));
      expect(back.length).toBe(data.length);
    });

    it('stores and serves an empty blob', async () => {
      const info = await store.put('empty', Readable.from([]));
      expect(info).toMatchObject({ size: 0, sha256: sha256(Buffer.alloc(0)) });
      const { data, error } = await drain((await store.get('empty'))!.stream);
      expect(error).toBeUndefined();
      expect(data.length).toBe(0);
    });

    it('serves exactly the bytes of a range', async () => {
      const data = pattern(700 * 1024, 7);
      await store.put('ranged', chunked(data, 100_000));
      const cases = [
        { start: 0, end: 9 },
        { start: 300_000, end: 400_000 },
        { start: data.length - 17, end: data.length - 1 },
        { start: 262_144, end: 262_144 },
        { start: 0, end: data.length - 1 },
      ];
      for (const range of cases) {
        let sizeSeen = -1;
        const read = await store.get('ranged', (size) => {
          sizeSeen = size;
          return range;
        });
        expect(sizeSeen).toBe(data.length);
        expect(read!.range).toEqual(range);
        const { data: part, error } = await drain(read!.stream);
        expect(error).toBeUndefined();
        expect(part.equals(data.subarray(range.start, range.end + 1))).toBe(true);
      }
    });

    it('answers stat and get for present and absent keys', async () => {
      const data = pattern(5000, 3);
      await store.put('present', chunked(data, 1000));
      expect(await store.stat('present')).toMatchObject({
        key: 'present',
        size: 5000,
        sha256: sha256(data),
      });
      expect((await store.stat('present'))!.mtimeMs).toBeGreaterThan(0);
      expect(await store.stat('absent')).toBeUndefined();
      expect(await store.get('absent')).toBeUndefined();
    });

    it('deletes idempotently', async () => {
      await store.put('doomed', chunked(pattern(100)));
      expect(await store.delete('doomed')).toBe(true);
      expect(await store.stat('doomed')).toBeUndefined();
      expect(await store.get('doomed')).toBeUndefined();
      expect(await store.delete('doomed')).toBe(false);
      expect(await store.delete('never-was')).toBe(false);
    });

    it('keeps exactly the new version after an overwrite with different bytes', async () => {
      const first = pattern(4000, 11);
      const second = pattern(2500, 12);
      await store.put('twice', chunked(first));
      const info = await store.put('twice', chunked(second));
      expect(info).toMatchObject({ size: 2500, sha256: sha256(second) });

      const { data, error } = await drain((await store.get('twice'))!.stream);
      expect(error).toBeUndefined();
      expect(data.equals(second)).toBe(true);

      const listed = (await store.list(undefined, 100)).blobs.filter((b) => b.key === 'twice');
      expect(listed).toHaveLength(1);
      expect(listed[0]!.sha256).toBe(sha256(second));
      expect(await store.usage()).toMatchObject({ objects: 1, bytes: 2500 });
    });

    it('counts an overwrite with the same bytes once', async () => {
      const data = pattern(3000, 13);
      await store.put('same', chunked(data));
      await store.put('same', chunked(data));
      expect(await store.usage()).toMatchObject({ objects: 1, bytes: 3000 });
      expect((await store.list(undefined, 100)).blobs).toHaveLength(1);
    });

    it('refuses a body whose sha256 is not the expected one and keeps nothing', async () => {
      const data = pattern(10_000, 5);
      const wrong = sha256(Buffer.from('something else'));
      await expect(
        store.put('checked', chunked(data, 1000), { expectedSha256: wrong }),
      ).rejects.toBeInstanceOf(ChecksumMismatchError);
      expect(await store.stat('checked')).toBeUndefined();
      expect(await store.usage()).toMatchObject({ objects: 0, bytes: 0 });

      const ok = await store.put('checked', chunked(data, 1000), { expectedSha256: sha256(data) });
      expect(ok.sha256).toBe(sha256(data));
    });

    it('keeps nothing when the body fails half-way', async () => {
      const body = Readable.from(
        (async function* () {
          yield pattern(64 * 1024);
          yield pattern(64 * 1024, 2);
          throw new Error('client went away');
        })(),
      );
      await expect(store.put('broken', body)).rejects.toThrow('client went away');
      expect(await store.stat('broken')).toBeUndefined();
      expect((await store.list(undefined, 100)).blobs).toEqual([]);
      expect(await store.usage()).toMatchObject({ objects: 0, bytes: 0 });
    });

    it('rejects invalid keys on every verb', async () => {
      for (const key of ['..', '.', 'a/b', 'x'.repeat(161), '', '../escape', 'a\\b', 'k@y']) {
        await expect(store.put(key, Readable.from([Buffer.from('x')])), key).rejects.toThrow();
        await expect(store.get(key), key).rejects.toThrow();
        await expect(store.stat(key), key).rejects.toThrow();
        await expect(store.delete(key), key).rejects.toThrow();
      }
      expect((await store.list(undefined, 100)).blobs).toEqual([]);
      // The longest legal key still works.
      const longest = 'k'.repeat(160);
      await store.put(longest, Readable.from([Buffer.from('ok')]));
      expect((await store.stat(longest))!.size).toBe(2);
    });

    it('pages through every blob exactly once in a stable order', async () => {
      const keys = Array.from({ length: 25 }, (_, i) => `blob-${i}`);
      for (const key of keys) await store.put(key, Readable.from([Buffer.from(key)]));

      const pageSizes: number[] = [];
      const seen: string[] = [];
      let after: string | undefined;
      for (let guard = 0; guard < 10; guard++) {
        const page = await store.list(after, 10);
        pageSizes.push(page.blobs.length);
        seen.push(...page.blobs.map((b) => b.key));
        if (page.next === null) break;
        after = page.next;
      }
      expect(pageSizes).toEqual([10, 10, 5]);
      expect([...seen].sort()).toEqual([...keys].sort());
      expect(new Set(seen).size).toBe(25);

      // Stable: a second walk, in one page, returns the same order.
      const whole = await store.list(undefined, 100);
      expect(whole.blobs.map((b) => b.key)).toEqual(seen);
      expect(whole.next).toBeNull();
      const blob7 = whole.blobs.find((b) => b.key === 'blob-7')!;
      expect(blob7).toMatchObject({ size: 6, sha256: sha256(Buffer.from('blob-7')) });
    });

    it('tracks usage across puts and deletes', async () => {
      expect(await store.usage()).toMatchObject({ objects: 0, bytes: 0 });
      await store.put('u1', chunked(pattern(1000)));
      await store.put('u2', chunked(pattern(2000)));
      await store.put('u3', chunked(pattern(3000)));
      expect(await store.usage()).toMatchObject({ objects: 3, bytes: 6000 });
      await store.delete('u2');
      await store.delete('u2');
      const usage = await store.usage();
      expect(usage).toMatchObject({ objects: 2, bytes: 4000 });
      expect(usage.totalBytes).toBeGreaterThan(0);
      expect(usage.freeBytes).toBeGreaterThan(0);
      expect(usage.freeBytes).toBeLessThanOrEqual(usage.totalBytes);
    });
  });
}

describeBlobStore('FsBlobStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'trove-blob-contract-'));
  const store = await FsBlobStore.open(root);
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

describe('FsBlobStore on disk', () => {
  let root: string;
  let opened: FsBlobStore[] = [];

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'trove-blob-fs-'));
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
    await rm(root, { recursive: true, force: true });
  });

  async function openStore(dir: string): Promise<FsBlobStore> {
    const store = await FsBlobStore.open(dir);
    opened.push(store);
    return store;
  }

  const blobFiles = () => filesUnder(join(root, 'blobs'));
  const tmpFiles = () => filesUnder(join(root, 'tmp'));
  const quarantined = () => filesUnder(join(root, 'quarantine'));

  /** Flips one bit of the blob's committed file, as a failing disk would. */
  async function corrupt(key: string, at: number): Promise<void> {
    const [file] = (await blobFiles()).filter((f) => f.includes(`${key}@`));
    expect(file).toBeDefined();
    const bytes = await readFile(file!);
    bytes[at]! ^= 0x01;
    await writeFile(file!, bytes);
  }

  /**
   * Quarantine happens just after the stream fails, one rename per file (the
   * blob, then its block sums): wait until `count` files are there (bounded).
   */
  async function waitForQuarantine(count: number): Promise<string[]> {
    const deadline = Date.now() + 2000;
    for (;;) {
      const files = await quarantined();
      if (files.length >= count || Date.now() > deadline) return files;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('names the file after the key and its sha256', async () => {
    const store = await openStore(root);
    const data = pattern(1234);
    await store.put('findme.thumb', chunked(data));
    const files = await blobFiles();
    expect(files).toHaveLength(1);
    expect(files[0]!.endsWith(`findme.thumb@${sha256(data)}`)).toBe(true);
    expect((await readFile(files[0]!)).equals(data)).toBe(true);
    expect(await tmpFiles()).toEqual([]);
  });

  it('statOnDisk sees a file removed behind its back; stat (the keydir) does not', async () => {
    const store = await openStore(root);
    const data = pattern(2000, 7);
    await store.put('gone', chunked(data));
    await store.put('kept', chunked(pattern(10, 8)));
    expect(await store.statOnDisk('gone')).toMatchObject({ size: 2000, sha256: sha256(data) });
    const [file] = (await blobFiles()).filter((f) => f.includes('gone@'));
    await rm(file!);
    expect(await store.stat('gone')).toBeDefined();
    expect(await store.statOnDisk('gone')).toBeUndefined();
    expect(await store.stat('gone')).toBeUndefined(); // forgotten, as a read that finds it gone does
    expect(await store.statOnDisk('kept')).toBeDefined();
    expect(await store.statOnDisk('never')).toBeUndefined();
  });

  it('leaves no file behind after a checksum mismatch, a failed body or an invalid key', async () => {
    const store = await openStore(root);
    await expect(
      store.put('m', chunked(pattern(5000)), { expectedSha256: 'a'.repeat(64) }),
    ).rejects.toBeInstanceOf(ChecksumMismatchError);
    const failing = Readable.from(
      (async function* () {
        yield pattern(300 * 1024);
        throw new Error('boom');
      })(),
    );
    await expect(store.put('f', failing)).rejects.toThrow('boom');
    for (const key of ['..', '.', 'a/b', 'x'.repeat(161), '']) {
      await expect(store.put(key, Readable.from([Buffer.from('x')]))).rejects.toThrow();
    }
    expect(await blobFiles()).toEqual([]);
    expect(await tmpFiles()).toEqual([]);
    expect(await readdir(root)).toEqual(expect.arrayContaining(['blobs', 'tmp', 'quarantine']));
    expect(await readdir(root)).toHaveLength(3);
  });

  it('recounts usage and clears tmp/ when reopened', async () => {
    const first = await openStore(root);
    await first.put('a', chunked(pattern(1000)));
    await first.put('b', chunked(pattern(2000)));
    await first.put('c', chunked(pattern(4000)));
    await first.delete('a');
    await writeFile(join(root, 'tmp', 'leftover.abc123.tmp'), 'half an upload');

    const second = await openStore(root);
    expect(await second.usage()).toMatchObject({ objects: 2, bytes: 6000 });
    expect(await tmpFiles()).toEqual([]);
    const { data } = await drain((await second.get('c'))!.stream);
    expect(data.equals(pattern(4000))).toBe(true);
  });

  it('fails a whole read of a blob corrupted past its first block, passing on only verified bytes, and quarantines it', async () => {
    const store = await openStore(root);
    // Three blocks (1 MiB each), corrupted in the second one.
    const data = pattern(2_500 * 1024, 21);
    await store.put('rotten', chunked(data));
    await corrupt('rotten', BLOCK_SIZE + 1000);

    const read = await store.get('rotten');
    expect(read!.verifiedBeforeSend).toBe(true);
    const { data: got, error } = await drain(read!.stream);
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    // The first block, which verified, and not a byte of the second.
    expect(got.equals(data.subarray(0, BLOCK_SIZE))).toBe(true);

    // The blob and its block sums (2.5 MiB has three blocks), moved aside together.
    const aside = (await waitForQuarantine(2)).map((f) => basename(f)).sort();
    expect(aside).toHaveLength(2);
    expect(aside[0]).toMatch(new RegExp(`^rotten@${sha256(data)}\\.\\d+$`));
    expect(aside[1]).toBe(`${aside[0]}${SUMS_SUFFIX}`);
    expect(await blobFiles()).toEqual([]);
    expect(await store.get('rotten')).toBeUndefined();
    expect(await store.usage()).toMatchObject({ objects: 0, bytes: 0 });
  });

  it('refuses a small corrupted blob before any stream exists, and quarantines it', async () => {
    const store = await openStore(root);
    const data = pattern(5000, 22);
    await store.put('small-rotten', chunked(data));
    await corrupt('small-rotten', 4999);
    await expect(store.get('small-rotten')).rejects.toBeInstanceOf(CorruptBlobError);
    expect(await quarantined()).toHaveLength(1);
    expect(await store.get('small-rotten')).toBeUndefined();
  });

  it('reads a healthy small blob whole when the kernel returns it in short reads', async () => {
    const store = await openStore(root);
    const data = pattern(200_000, 24);
    await store.put('short-read', chunked(data));
    // The real fs.read on the real file, but never more than a third of what was
    // asked: as NFS, FUSE or a signal can make read(2) answer, without being at EOF.
    type ReadCb = (err: NodeJS.ErrnoException | null, n: number, buf: Buffer) => void;
    const realRead = fs.read.bind(fs) as unknown as (...a: unknown[]) => void;
    const partial: number[] = [];
    vi.spyOn(fs, 'read').mockImplementation(((
      fd: number,
      buf: Buffer,
      offset: number,
      length: number,
      position: number,
      cb: ReadCb,
    ) => {
      const short = Math.max(1, Math.floor(length / 3));
      realRead(fd, buf, offset, short, position, (err: NodeJS.ErrnoException | null, n: number) => {
        if (n > 0) partial.push(n);
        cb(err, n, buf);
      });
    }) as unknown as typeof fs.read);

    const read = await store.get('short-read');
    expect(partial.length).toBeGreaterThan(1); // the short reads did happen
    expect(read!.data!.equals(data)).toBe(true);
    expect(await quarantined()).toEqual([]);
    expect(await store.stat('short-read')).toBeDefined();
  });

  it('counts the bytes it reads from disk to serve reads', async () => {
    const store = await openStore(root);
    const small = pattern(5000, 25);
    const large = pattern(2 * 1024 * 1024 + 3, 26);
    await store.put('small', chunked(small));
    await store.put('large', chunked(large));
    expect(store.bytesReadFromDisk()).toBe(0); // writing reads nothing back
    await drain((await store.get('small'))!.stream);
    expect(store.bytesReadFromDisk()).toBe(small.length);
    await drain((await store.get('large'))!.stream);
    // The large blob is read block by block, checked against its sums: their digests are read too.
    const sums = (await blobFiles()).find((f) => f.includes('large@') && f.endsWith(SUMS_SUFFIX));
    const sumsBytes = (await readFile(sums!)).length;
    const read = store.bytesReadFromDisk() - small.length - large.length;
    expect(read).toBeGreaterThanOrEqual(3 * 32); // a sha256 per block
    expect(read).toBeLessThanOrEqual(sumsBytes);
  });

  /** The sha256 of each 1 MiB block, computed the plain way. */
  const blockDigests = (data: Buffer) =>
    Array.from({ length: Math.ceil(data.length / BLOCK_SIZE) }, (_, i) =>
      createHash('sha256')
        .update(data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE))
        .digest(),
    );
  const names = async (dir: string) => (await filesUnder(join(root, dir))).map((f) => basename(f));

  it('writes block sums beside a blob over 1 MiB, none for a smaller one; listings ignore them', async () => {
    const store = await openStore(root);
    const large = pattern(2 * BLOCK_SIZE + 100, 31);
    const small = pattern(BLOCK_SIZE, 32);
    await store.put('large', chunked(large));
    await store.put('small', chunked(small));
    expect((await names('blobs')).sort()).toEqual(
      [`large@${sha256(large)}`, `large@${sha256(large)}.blocks`, `small@${sha256(small)}`].sort(),
    );
    const sums = await readFile(store.sumsPathOf((await store.stat('large'))!));
    expect(sums.equals(encodeSums(sha256(large), large.length, blockDigests(large)))).toBe(true);
    expect(await tmpFiles()).toEqual([]);
    expect((await store.list(undefined, 100)).blobs.map((b) => b.key).sort()).toEqual([
      'large',
      'small',
    ]);
    expect(await store.usage()).toMatchObject({ objects: 2, bytes: large.length + small.length });
    // Reopened: the index is built from the blobs alone.
    const again = await openStore(root);
    expect(await again.usage()).toMatchObject({ objects: 2, bytes: large.length + small.length });
  });

  it('removes the sums with their blob on delete and on overwrite', async () => {
    const store = await openStore(root);
    const first = pattern(BLOCK_SIZE + 1, 33);
    const second = pattern(3 * BLOCK_SIZE, 34);
    await store.put('k', chunked(first));
    await store.put('k', chunked(second));
    expect((await names('blobs')).sort()).toEqual([
      `k@${sha256(second)}`,
      `k@${sha256(second)}.blocks`,
    ]);
    await store.put('k', chunked(pattern(10, 35))); // a small one has none
    expect(await names('blobs')).toEqual([`k@${sha256(pattern(10, 35))}`]);
    await store.put('k', chunked(second));
    expect(await store.delete('k')).toBe(true);
    expect(await blobFiles()).toEqual([]);
  });

  it('removes, at open, sums left without their blob (a crash between the two renames)', async () => {
    const store = await openStore(root);
    const kept = pattern(2 * BLOCK_SIZE, 36);
    const lost = pattern(2 * BLOCK_SIZE, 37);
    await store.put('kept', chunked(kept));
    await store.put('lost', chunked(lost));
    await rm(store.pathOf((await store.stat('lost'))!)); // its sums stay behind
    // And sums of an older version, as an overwrite interrupted by a crash leaves them.
    const olderSums = store.sumsPathOf({ ...(await store.stat('kept'))!, sha256: 'e'.repeat(64) });
    await writeFile(olderSums, 'stale');

    await openStore(root);
    expect((await names('blobs')).sort()).toEqual([
      `kept@${sha256(kept)}`,
      `kept@${sha256(kept)}.blocks`,
    ]);
  });
});

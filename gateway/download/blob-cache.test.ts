import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BlobCache, MAX_CACHED_BLOB } from './blob-cache.js';

function blob(key: string, size: number, fill = 1) {
  const data = Buffer.alloc(size, fill);
  return { key, size, sha256: createHash('sha256').update(data).digest('hex'), data };
}

/** Fills `cache` with `b` as a finished read would. */
async function fill(cache: BlobCache, b: ReturnType<typeof blob>, end = true): Promise<void> {
  const stream = new PassThrough();
  stream.resume();
  stream.on('error', () => undefined); // the consumer's business
  const closed = new Promise((r) => stream.once('close', r));
  cache.fillFrom(b, stream);
  stream.write(b.data.subarray(0, 10));
  stream.write(b.data.subarray(10));
  if (end) stream.end();
  else stream.destroy(new Error('checksum mismatch'));
  await closed;
}

describe('BlobCache', () => {
  it('keeps a blob once its read ended, and serves it by key and sha256', async () => {
    const cache = new BlobCache(1024 * 1024);
    const a = blob('a', 1000);
    expect(cache.get(a)).toBeUndefined();
    await fill(cache, a);
    expect(cache.get(a)).toEqual(a.data);
    expect(cache.get({ ...a, sha256: 'f'.repeat(64) })).toBeUndefined();
    expect(cache.stats()).toEqual({ hits: 1, misses: 2, bytes: 1000, entries: 1 });
  });

  it('keeps nothing of a read that failed (a checksum mismatch never ends a stream)', async () => {
    const cache = new BlobCache(1024 * 1024);
    const a = blob('a', 1000);
    await fill(cache, a, false);
    expect(cache.get(a)).toBeUndefined();
    expect(cache.stats().bytes).toBe(0);
  });

  it('drops the least recently used blobs to stay within its bytes', async () => {
    const cache = new BlobCache(3000);
    const [a, b, c] = [blob('a', 1000, 1), blob('b', 1000, 2), blob('c', 1000, 3)];
    await fill(cache, a);
    await fill(cache, b);
    await fill(cache, c);
    cache.get(a); // now b is the least recently used
    await fill(cache, blob('d', 1000, 4));
    expect(cache.get(b)).toBeUndefined();
    expect(cache.get(a)).toEqual(a.data);
    expect(cache.get(c)).toEqual(c.data);
    expect(cache.stats()).toMatchObject({ bytes: 3000, entries: 3 });
  });

  it('never takes a blob over MAX_CACHED_BLOB or its own size, and nothing when off', async () => {
    const big = blob('big', MAX_CACHED_BLOB + 1);
    const cache = new BlobCache(64 * 1024 * 1024);
    await fill(cache, big);
    expect(cache.stats()).toMatchObject({ bytes: 0, misses: 0 });
    const off = new BlobCache(0);
    await fill(off, blob('a', 10));
    expect(off.get(blob('a', 10))).toBeUndefined();
    expect(off.stats()).toEqual({ hits: 0, misses: 0, bytes: 0, entries: 0 });
  });

  it("drops every blob of a deleted file, and only that file's", async () => {
    const cache = new BlobCache(1024 * 1024);
    const own = [blob('AAAA', 100), blob('AAAA.thumb', 50), blob('AAAA.compressed', 70)];
    const other = blob('AAAAB', 100);
    for (const b of [...own, other]) await fill(cache, b);
    cache.deleteFile('AAAA');
    for (const b of own) expect(cache.get(b)).toBeUndefined();
    expect(cache.get(other)).toEqual(other.data);
    expect(cache.stats().bytes).toBe(100);
  });
});

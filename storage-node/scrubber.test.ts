import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, rm } from 'node:fs/promises';
import { flipByte } from '../test/disk-faults.js';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FsBlobStore } from './blob-store.js';
import { BLOCK_SIZE } from './block-sums.js';
import { Scrubber, type ScrubberOptions } from './scrubber.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Deterministic, non-repeating bytes. */
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

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

let root: string;
let store: FsBlobStore;
let logLines: { level: number; msg: string; [k: string]: unknown }[];
const scrubbers: Scrubber[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'trove-scrub-'));
  store = await FsBlobStore.open(root);
  logLines = [];
});
afterEach(async () => {
  for (const s of scrubbers.splice(0)) await s.stop();
  vi.restoreAllMocks();
  await store.close();
  await rm(root, { recursive: true, force: true });
});

function scrubber(opts: Partial<ScrubberOptions> = {}): Scrubber {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        logLines.push(JSON.parse(line));
      done();
    },
  });
  const s = new Scrubber({
    store,
    log: pino({ level: 'info' }, sink),
    intervalSeconds: 0,
    bytesPerSecond: 1e9,
    ...opts,
  });
  scrubbers.push(s);
  return s;
}

async function put(key: string, data: Buffer): Promise<void> {
  await store.put(key, Readable.from([data]));
}

const blobFile = async (key: string) =>
  (await filesUnder(join(root, 'blobs'))).find((f) => basename(f).startsWith(`${key}@`));
const quarantined = () => filesUnder(join(root, 'quarantine'));

/** Flips one bit of a blob's committed file in place, as a failing disk would. */
async function flip(key: string, at: number): Promise<void> {
  await flipByte((await blobFile(key))!, at);
}

async function readBack(key: string): Promise<Buffer> {
  const read = await store.get(key);
  expect(read, key).toBeDefined();
  const chunks: Buffer[] = [];
  for await (const chunk of read!.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('Scrubber', () => {
  it('quarantines a corrupt blob, leaves the good ones alone and counts both', async () => {
    const blobs = {
      small: pattern(10_000, 1),
      // Several read chunks, damaged near the end: the read streams through it all.
      large: pattern(900 * 1024, 2),
      empty: Buffer.alloc(0),
      other: pattern(300 * 1024, 3),
    };
    for (const [key, data] of Object.entries(blobs)) await put(key, data);
    await flip('large', 800 * 1024);

    const s = scrubber();
    expect(s.status()).toEqual({
      running: false,
      last_started: null,
      last_finished: null,
      blobs_checked: 0,
      bytes_checked: 0,
      corrupt_found: 0,
    });
    const total = Object.values(blobs).reduce((n, b) => n + b.length, 0);
    const before = Date.now();
    expect(await s.runPass()).toEqual({
      blobsChecked: 4,
      bytesChecked: total,
      corrupt: 1,
      skipped: 0,
      sumsWritten: 0,
    });

    // Quarantined exactly as a failed read does it: gone from the keydir, the disk listing and blobs/.
    const q = await quarantined();
    expect(q).toHaveLength(1);
    expect(basename(q[0]!)).toMatch(new RegExp(`^large@${sha256(blobs.large)}\\.\\d+$`));
    expect(await blobFile('large')).toBeUndefined();
    expect(await store.get('large')).toBeUndefined();
    expect((await store.list(undefined, 100)).blobs.map((b) => b.key).sort()).toEqual([
      'empty',
      'other',
      'small',
    ]);
    for (const key of ['small', 'empty', 'other'] as const) {
      expect((await readBack(key)).equals(blobs[key])).toBe(true);
    }

    const status = s.status();
    expect(status).toMatchObject({ blobs_checked: 4, bytes_checked: total, corrupt_found: 1 });
    expect(Date.parse(status.last_started!)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(status.last_finished!)).toBeGreaterThanOrEqual(
      Date.parse(status.last_started!),
    );

    const warn = logLines.filter((l) => l.level === 40);
    expect(warn).toEqual([
      expect.objectContaining({ key: 'large', expected: sha256(blobs.large) }),
    ]);
    expect(logLines.filter((l) => l.level === 30)).toEqual([
      expect.objectContaining({ blobsChecked: 4, corrupt: 1, skipped: 0 }),
    ]);

    // The next pass: counts of that pass, and the running total of corrupt finds.
    await flip('small', 0);
    expect(await s.runPass()).toMatchObject({ blobsChecked: 3, corrupt: 1 });
    expect(await s.runPass()).toMatchObject({ blobsChecked: 2, corrupt: 0 });
    expect(s.status()).toMatchObject({
      blobs_checked: 2,
      bytes_checked: blobs.other.length,
      corrupt_found: 2,
    });
    expect(await quarantined()).toHaveLength(2);
  });

  it('skips blobs deleted or replaced during the pass, without error', async () => {
    await put('keep', pattern(5000, 4));
    await put('deleted', pattern(5000, 5));
    await put('replaced', pattern(5000, 6));
    await put('deleted-mid-read', pattern(1024 * 1024, 7));
    // Corrupt, so a wrong decision would show up as a quarantined file.
    for (const key of ['deleted', 'replaced', 'deleted-mid-read']) await flip(key, 100);
    const replacement = pattern(7000, 8);

    // Rate-limited to ~1 MB/s, so the 1 MiB blob takes about a second to read.
    const s = scrubber({ bytesPerSecond: 1e6 });
    const stat = store.stat.bind(store);
    vi.spyOn(store, 'stat').mockImplementation(async (key) => {
      // The scrubber looks a listed blob up just before reading it: change it right then.
      if (key === 'deleted') await store.delete(key);
      if (key === 'replaced') await put(key, replacement);
      const info = await stat(key);
      if (key === 'deleted-mid-read') setTimeout(() => void store.delete(key), 100);
      return info;
    });

    const result = await s.runPass();
    expect(result).toMatchObject({ blobsChecked: 1, corrupt: 0, skipped: 3 });
    expect(s.status()).toMatchObject({ blobs_checked: 1, corrupt_found: 0 });
    expect(await quarantined()).toEqual([]);
    expect(logLines.filter((l) => l.level >= 40)).toEqual([]);
    expect((await readBack('replaced')).equals(replacement)).toBe(true);
    expect(await blobFile('deleted')).toBeUndefined();
    expect(await blobFile('deleted-mid-read')).toBeUndefined();
  });

  it('logs a blob it cannot read and goes on with the pass', async () => {
    await put('a', pattern(1000, 13));
    await put('b', pattern(1000, 14));
    await put('c', pattern(1000, 15));
    const pathOf = store.pathOf.bind(store);
    // Reading a directory fails with EISDIR, as a bad sector fails with EIO.
    vi.spyOn(store, 'pathOf').mockImplementation((info) =>
      info.key === 'b' ? join(root, 'blobs') : pathOf(info),
    );
    const s = scrubber();
    expect(await s.runPass()).toMatchObject({ blobsChecked: 2, corrupt: 0, skipped: 1 });
    expect(logLines.filter((l) => l.level === 50)).toEqual([
      expect.objectContaining({ key: 'b', msg: 'scrub: could not read blob' }),
    ]);
    expect(await quarantined()).toEqual([]);
    expect(await store.stat('b')).toBeDefined();
  });

  it('paces its reads to the configured rate', async () => {
    await put('a', pattern(300_000, 9));
    await put('b', pattern(300_000, 10));
    const s = scrubber({ bytesPerSecond: 1e6 });
    const started = Date.now();
    expect(await s.runPass()).toMatchObject({ blobsChecked: 2, bytesChecked: 600_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
  });

  it('runs passes on its schedule, the first after one interval, and stops cleanly', async () => {
    await put('a', pattern(1000, 11));
    const disabled = scrubber({ intervalSeconds: 0 });
    disabled.start();

    const s = scrubber({ intervalSeconds: 0.2 });
    s.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(s.status().last_started).toBeNull(); // not at start-up
    const deadline = Date.now() + 5000;
    while (s.status().last_finished === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(s.status()).toMatchObject({ blobs_checked: 1, bytes_checked: 1000 });
    await s.stop();
    const after = s.status().last_started;
    await new Promise((r) => setTimeout(r, 400));
    expect(s.status().last_started).toBe(after);
    expect(disabled.status().last_started).toBeNull();
  });

  it('stops in the middle of a slow pass', async () => {
    await put('big', pattern(2 * 1024 * 1024, 12));
    const s = scrubber({ intervalSeconds: 0.05, bytesPerSecond: 256 * 1024 });
    s.start();
    const deadline = Date.now() + 5000;
    while (s.status().last_started === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(s.status().last_started).not.toBeNull();
    const stopping = Date.now();
    await s.stop();
    expect(Date.now() - stopping).toBeLessThan(1000);
    expect(s.status().last_finished).toBeNull();
    expect(logLines.filter((l) => l.level >= 50)).toEqual([]);
  });
});

describe('Scrubber and block sums', () => {
  const sumsOf = async (key: string) => store.sumsPathOf((await store.stat(key))!);

  it('writes the missing block sums of a verified blob, once (a store from before block sums)', async () => {
    const data = pattern(3 * BLOCK_SIZE + 5, 41);
    await put('old', data);
    await put('small', pattern(1000, 42));
    const path = await sumsOf('old');
    const written = await readFile(path);
    await rm(path);

    const s = scrubber();
    expect(await s.runPass()).toMatchObject({ blobsChecked: 2, corrupt: 0, sumsWritten: 1 });
    expect((await readFile(path)).equals(written)).toBe(true);
    expect(logLines).toContainEqual(
      expect.objectContaining({ level: 30, key: 'old', msg: 'scrub: block sums written' }),
    );
    expect(await s.runPass()).toMatchObject({ blobsChecked: 2, sumsWritten: 0 });
    expect(await filesUnder(join(root, 'tmp'))).toEqual([]);
  });

  it('rebuilds damaged block sums of a good blob instead of quarantining it', async () => {
    const data = pattern(2 * BLOCK_SIZE + 7, 43);
    await put('good', data);
    const path = await sumsOf('good');
    const written = await readFile(path);
    const file = await open(path, 'r+');
    await file.write(Buffer.from([written[60]! ^ 0xff]), 0, 1, 60); // inside block 0's digest
    await file.close();

    const s = scrubber();
    expect(await s.runPass()).toMatchObject({ blobsChecked: 1, corrupt: 0, sumsWritten: 1 });
    expect((await readFile(path)).equals(written)).toBe(true);
    expect(await quarantined()).toEqual([]);
    expect(logLines).toContainEqual(
      expect.objectContaining({
        level: 40,
        key: 'good',
        msg: 'scrub: damaged block sums rebuilt',
      }),
    );
    // Ranged reads verify by block again.
    const read = await store.get('good', () => ({ start: 5, end: 9 }));
    const chunks: Buffer[] = [];
    for await (const chunk of read!.stream) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(data.subarray(5, 10))).toBe(true);
  });

  it('quarantines a corrupt large blob with its sums', async () => {
    await put('rotten', pattern(2 * BLOCK_SIZE, 44));
    await flip('rotten', BLOCK_SIZE + 3);
    expect(await scrubber().runPass()).toMatchObject({ corrupt: 1, sumsWritten: 0 });
    expect((await quarantined()).map((f) => basename(f).replace(/\.\d+/, '.<t>')).sort()).toEqual([
      `rotten@${sha256(pattern(2 * BLOCK_SIZE, 44))}.<t>`,
      `rotten@${sha256(pattern(2 * BLOCK_SIZE, 44))}.<t>.blocks`,
    ]);
    expect(await filesUnder(join(root, 'blobs'))).toEqual([]);
  });
});

describe('Scrubber.startNow', () => {
  it('starts one pass at once, never a second beside it, and reports it running', async () => {
    await put('a', pattern(300_000, 21));
    await put('b', pattern(300_000, 22));
    const s = scrubber({ intervalSeconds: 0, bytesPerSecond: 1e6 }); // schedule off: ~0.6 s a pass
    expect(s.status().running).toBe(false);
    expect(s.startNow()).toBe(true);
    expect(s.status()).toMatchObject({ running: true, last_started: expect.any(String) });
    expect(s.startNow()).toBe(false);
    // A pass asked for meanwhile is the same pass, not another one.
    const joined = await s.runPass();
    expect(joined).toMatchObject({ blobsChecked: 2, bytesChecked: 600_000 });
    expect(s.status()).toMatchObject({ running: false, blobs_checked: 2 });
    expect(logLines.filter((l) => l.msg.startsWith('scrub pass finished'))).toHaveLength(1);
    expect(s.startNow()).toBe(true);
    await s.stop(); // stops a pass started by startNow too
    expect(s.status().running).toBe(false);
    expect(s.startNow()).toBe(false);
  });
});

import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MEMORY_PER_UPLOAD, UploadSpool } from './upload-spool.js';
import { MemoryBudget } from '../../shared/memory-budget.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trove-spool-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Streams `data` through a spool in 64 KiB chunks; what came out of it, and the spool. */
async function spoolOf(data: Buffer, memory: MemoryBudget, id = 'f1') {
  const spool = new UploadSpool(dir, id, memory);
  const chunks = [];
  for (let at = 0; at < data.length; at += 64 * 1024)
    chunks.push(data.subarray(at, at + 64 * 1024));
  const passed: Buffer[] = [];
  await pipeline(Readable.from(chunks), spool, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) passed.push(chunk);
  });
  return { spool, passed: Buffer.concat(passed) };
}

/** Byte equality without vitest's element-by-element diff of megabytes. */
function expectSame(actual: Buffer, expected: Buffer): void {
  expect(actual.length).toBe(expected.length);
  expect(actual.equals(expected)).toBe(true);
}

async function replayed(spool: UploadSpool): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of spool.replay()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('UploadSpool', () => {
  it('keeps a small upload in memory: no file, the same bytes replayed, the memory given back', async () => {
    const memory = new MemoryBudget(8 * MEMORY_PER_UPLOAD);
    const data = randomBytes(200 * 1024);
    const { spool, passed } = await spoolOf(data, memory);
    expectSame(passed, data);
    expect(spool.spilled).toBe(false);
    expect(existsSync(spool.path)).toBe(false);
    expect(memory.inUse).toBe(data.length);
    expectSame(await replayed(spool), data);
    expectSame(await replayed(spool), data); // a replay whose own head fails is replayed again
    await spool.discard();
    await spool.discard();
    expect(memory.inUse).toBe(0);
  });

  it('keeps the first MiB of a larger upload in memory and the rest in its file', async () => {
    const memory = new MemoryBudget(8 * MEMORY_PER_UPLOAD);
    const data = randomBytes(3 * MEMORY_PER_UPLOAD + 5000);
    const { spool, passed } = await spoolOf(data, memory);
    expectSame(passed, data);
    expect(spool.spilled).toBe(true);
    expect(memory.inUse).toBe(MEMORY_PER_UPLOAD);
    expectSame(await replayed(spool), data);
    await spool.discard();
    expect(existsSync(spool.path)).toBe(false);
    expect(memory.inUse).toBe(0);
  });

  it('goes to its file once the gateway-wide memory is taken by other uploads', async () => {
    const memory = new MemoryBudget(MEMORY_PER_UPLOAD + 100 * 1024);
    const first = await spoolOf(randomBytes(MEMORY_PER_UPLOAD), memory, 'a');
    const data = randomBytes(300 * 1024);
    const second = await spoolOf(data, memory, 'b');
    // 100 KiB were left: the first 64 KiB chunk fit, the next did not, so the rest is on disk.
    expect(second.spool.spilled).toBe(true);
    expect(memory.inUse).toBe(MEMORY_PER_UPLOAD + 64 * 1024);
    expectSame(await replayed(second.spool), data);
    await first.spool.discard();
    await second.spool.discard();
    expect(memory.inUse).toBe(0);
  });

  it('uses files only when the memory budget is 0', async () => {
    const memory = new MemoryBudget(0);
    const data = randomBytes(10 * 1024);
    const { spool } = await spoolOf(data, memory);
    expect(spool.spilled).toBe(true);
    expect(existsSync(spool.path)).toBe(true);
    expectSame(await replayed(spool), data);
    await spool.discard();
    expect(existsSync(spool.path)).toBe(false);
  });

  it('holds no file open for a replay destroyed before it was read, nor one read to its end', async () => {
    const memory = new MemoryBudget(MEMORY_PER_UPLOAD);
    const data = randomBytes(MEMORY_PER_UPLOAD + 64 * 1024);
    const { spool } = await spoolOf(data, memory);
    const open = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === spool.path;
        } catch {
          return false;
        }
      }).length;
    const writing = open(); // the spool's own file handle, until discard
    spool.replay().destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(open()).toBe(writing);
    expectSame(await replayed(spool), data);
    await new Promise((r) => setTimeout(r, 50));
    expect(open()).toBe(writing);
    await spool.discard();
  });
});

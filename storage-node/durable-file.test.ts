import { readFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DurableFileSink } from './durable-file.js';

function chunksOf(count: number, size: (i: number) => number): Buffer[] {
  return Array.from({ length: count }, (_, i) => Buffer.alloc(size(i), (i * 7 + 1) & 0xff));
}

type Writev = (
  buffers: readonly NodeJS.ArrayBufferView[],
  position?: number,
) => Promise<{ bytesWritten: number }>;

function setWritev(file: FileHandle, writev: Writev): void {
  file.writev = writev as FileHandle['writev'];
}

function finished(sink: DurableFileSink): Promise<void> {
  return new Promise((resolve, reject) => {
    sink.once('finish', resolve);
    sink.once('error', reject);
  });
}

describe('DurableFileSink', () => {
  let dir: string;
  let path: string;
  let file: FileHandle;
  let writevCalls: number;
  let events: string[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trove-durable-'));
    path = join(dir, 'out.bin');
    file = await open(path, 'wx');
    writevCalls = 0;
    events = [];
    // Observe (not replace) the syscalls the sink makes.
    const writev = file.writev.bind(file);
    setWritev(file, (buffers, position) => {
      writevCalls += 1;
      return writev(buffers, position);
    });
    const datasync = file.datasync.bind(file);
    file.datasync = async () => {
      await datasync();
      events.push('datasync');
    };
  });

  afterEach(async () => {
    await file.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('writes many chunks in order', async () => {
    const chunks = chunksOf(300, (i) => 1 + ((i * 977) % 5000));
    await pipeline(Readable.from(chunks), new DurableFileSink(file));
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('writes corked chunks in one writev, in order', async () => {
    const chunks = chunksOf(100, (i) => 10 + i);
    const sink = new DurableFileSink(file);
    const done = finished(sink);
    sink.cork();
    for (const chunk of chunks) sink.write(chunk);
    sink.uncork();
    sink.end();
    await done;
    expect(writevCalls).toBe(1);
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('goes on writing after a short writev', async () => {
    // A writev that writes only part of what it is given, as the kernel may.
    const writev = file.writev;
    setWritev(file, (buffers, position) => {
      const first = buffers[0] as Buffer;
      return writev([first.subarray(0, Math.ceil(first.length / 2))], position);
    });
    const chunks = chunksOf(20, (i) => 100 + i * 13);
    const sink = new DurableFileSink(file);
    const done = finished(sink);
    sink.cork();
    for (const chunk of chunks) sink.write(chunk);
    sink.uncork();
    sink.end();
    await done;
    expect(writevCalls).toBeGreaterThan(chunks.length);
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it("emits 'finish' only once the bytes are in the file and datasynced", async () => {
    const chunks = chunksOf(50, (i) => 1000 + i);
    const expected = Buffer.concat(chunks);
    const sink = new DurableFileSink(file);
    const atFinish = new Promise<Buffer>((resolve) =>
      sink.once('finish', () => {
        events.push('finish');
        resolve(readFileSync(path));
      }),
    );
    for (const chunk of chunks) sink.write(chunk);
    sink.end();
    expect((await atFinish).equals(expected)).toBe(true);
    expect(events).toEqual(['datasync', 'finish']);
  });

  it('fails when the file cannot be written', async () => {
    await file.close();
    const sink = new DurableFileSink(file);
    await expect(pipeline(Readable.from([Buffer.from('lost')]), sink)).rejects.toThrow();
  });
});

/**
 * A Writable into an open file whose 'finish' means "on disk": `_final` runs
 * fdatasync before the stream reports completion. Buffered chunks go down in
 * one writev, so a burst from the network costs one syscall.
 */
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

export class DurableFileSink extends Writable {
  constructor(private readonly file: FileHandle) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    writeAll(this.file, [chunk]).then(() => done(), done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    writeAll(
      this.file,
      chunks.map((c) => c.chunk),
    ).then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.file.datasync().then(() => done(), done);
  }
}

/** writev may write less than asked (signals, huge buffers): loop until every byte is down. */
async function writeAll(file: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers;
  while (pending.length > 0) {
    const { bytesWritten } = await file.writev(pending);
    pending = skipBytes(pending, bytesWritten);
  }
}

function skipBytes(buffers: Buffer[], count: number): Buffer[] {
  const rest: Buffer[] = [];
  for (const buf of buffers) {
    if (count >= buf.length) {
      count -= buf.length;
      continue;
    }
    rest.push(count > 0 ? buf.subarray(count) : buf);
    count = 0;
  }
  return rest;
}

/**
 * A Writable into an open file whose 'finish' means "on disk": `_final` runs
 * fdatasync before the stream reports completion. Buffered chunks go down in
 * one writev, so a burst from the network costs one syscall.
 */
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { writevAll } from '../shared/streams.js';

export class DurableFileSink extends Writable {
  constructor(private readonly file: FileHandle) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    writevAll(this.file, [chunk]).then(() => done(), done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    writevAll(
      this.file,
      chunks.map((c) => c.chunk),
    ).then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.file.datasync().then(() => done(), done);
  }
}

/**
 * A Writable into an open file whose 'finish' means "on disk": `_final` runs
 * fdatasync before the stream reports completion. Buffered chunks go down in
 * one writev, so a burst from the network costs one syscall.
 */
import fsCb from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
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

/**
 * Writes `data` to a new file at `path` (failing if it exists) and fdatasyncs
 * it: for small files written whole, such as a blob's block sums. The caller
 * renames it into place and fsyncs the directory, and removes it on failure.
 */
export async function writeDurableFile(path: string, data: Buffer): Promise<void> {
  const file = await open(path, 'wx');
  try {
    await writevAll(file, [data]);
    await file.datasync();
  } finally {
    await file.close();
  }
}

/** A callback fs call as a promise: for one small file, a fraction of a FileHandle's CPU. */
function call<T>(fn: (done: (err: NodeJS.ErrnoException | null, value?: T) => void) => void) {
  return new Promise<T>((resolve, reject) =>
    fn((err, value) => (err ? reject(err) : resolve(value as T))),
  );
}

/**
 * As writeDurableFile, for a whole small blob on the write path: callback fs
 * calls on a file descriptor (open, write until done, fdatasync, close)
 * instead of a FileHandle, whose promises and objects cost several times
 * more CPU per file than the writing itself at 64 KiB.
 */
export async function writeSmallFileDurably(path: string, data: Buffer): Promise<void> {
  const fd = await call<number>((done) => fsCb.open(path, 'wx', 0o644, done));
  try {
    for (let at = 0; at < data.length;) {
      at += await call<number>((done) =>
        fsCb.write(fd, data, at, data.length - at, null, (err, n) => done(err, n)),
      );
    }
    await call<void>((done) => fsCb.fdatasync(fd, done));
  } finally {
    await call<void>((done) => fsCb.close(fd, done));
  }
}

/**
 * A copy of an upload's bytes at the gateway while it streams to the nodes.
 * If the chain's head dies mid-stream, no node holds the whole file and the
 * client's bytes are gone; the spool lets the gateway replay them to the
 * nodes still up, so the upload succeeds anyway.
 *
 * The first bytes of an upload stay in memory, as the chunks that arrived,
 * while the gateway-wide budget (a MemoryBudget of UPLOAD_SPOOL_MEMORY) has room,
 * up to MEMORY_PER_UPLOAD each: a small upload then costs no file at all (opening,
 * writing, closing and removing one cost about as much CPU as the rest of
 * the gateway's work on a 64 KiB upload). What does not fit goes to a file
 * in the spool directory. Memory stays flat whatever the file size or the
 * number of uploads: the budget bounds the sum.
 *
 * The file is not fsynced (it only has to outlive the request; the nodes'
 * copies are the durable ones) and always removed when the upload ends,
 * either way. A chunk is forwarded once it is kept.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { MemoryBudget } from '../../shared/memory-budget.js';

/** Bytes one upload keeps in memory at most; the rest of a larger one goes to its file. */
export const MEMORY_PER_UPLOAD = 1024 * 1024;

export class UploadSpool extends Transform {
  readonly path: string;
  /** The first bytes, as they arrived; once a chunk did not fit, every later one goes to the file. */
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  private file: Promise<FileHandle> | undefined;
  private discarded = false;

  constructor(
    dir: string,
    id: string,
    private readonly memory: MemoryBudget,
  ) {
    super();
    this.path = join(dir, `${id}.part`);
  }

  /** Empties (or creates) a gateway's spool directory: leftovers of a crash are useless. */
  static async reset(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
  }

  /** Whether part of the upload went to a file (for tests and logs). */
  get spilled(): boolean {
    return this.file !== undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    // Bytes still passing after the upload ended (a stage being torn down) need no copy.
    if (this.discarded) return done(null, chunk);
    if (!this.file && this.keep(chunk)) return done(null, chunk);
    this.openFile()
      .then((fh) => fh.write(chunk))
      .then(() => done(null, chunk), done);
  }

  /** The bytes spooled so far, from the first; call once the upload stream has ended. */
  replay(): Readable {
    const kept = [...this.kept];
    const path = this.file ? this.path : null;
    return Readable.from(
      (async function* () {
        yield* kept;
        // Opened only when read this far: a replay destroyed unread (every node refused) holds no file.
        if (path) yield* createReadStream(path, { highWaterMark: 1024 * 1024 });
      })(),
      { objectMode: false },
    );
  }

  /** Gives back the memory and closes and removes the file, if any. */
  async discard(): Promise<void> {
    this.discarded = true;
    this.memory.give(this.keptBytes);
    this.kept.length = 0;
    this.keptBytes = 0;
    if (!this.file) return;
    await this.file.then((fh) => fh.close()).catch(() => undefined);
    await rm(this.path, { force: true });
  }

  private keep(chunk: Buffer): boolean {
    if (this.keptBytes + chunk.length > MEMORY_PER_UPLOAD) return false;
    if (!this.memory.tryTake(chunk.length)) return false;
    this.kept.push(chunk);
    this.keptBytes += chunk.length;
    return true;
  }

  private openFile(): Promise<FileHandle> {
    return (this.file ??= open(this.path, 'w'));
  }
}

/**
 * A copy of an upload's bytes on the gateway's disk while it streams to the
 * nodes. If the chain's head dies mid-stream, no node holds the whole file
 * and the client's bytes are gone from memory; the spool lets the gateway
 * replay them to the nodes still up, so the upload succeeds anyway.
 *
 * Not fsynced (it only has to outlive the request; the nodes' copies are the
 * durable ones) and always removed when the upload ends, either way. Memory
 * stays flat: a chunk is forwarded once it is written.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';

export class UploadSpool extends Transform {
  readonly path: string;
  private readonly file: Promise<FileHandle>;

  constructor(dir: string, id: string) {
    super();
    this.path = join(dir, `${id}.part`);
    this.file = open(this.path, 'w');
    this.file.catch(() => undefined); // surfaced by the first write
  }

  /** Empties (or creates) a gateway's spool directory: leftovers of a crash are useless. */
  static async reset(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.file.then((fh) => fh.write(chunk)).then(() => done(null, chunk), done);
  }

  /** The bytes spooled so far, from the first; call once the upload stream has ended. */
  replay(): Readable {
    return createReadStream(this.path, { highWaterMark: 1024 * 1024 });
  }

  /** Closes and removes the spool file. */
  async discard(): Promise<void> {
    await this.file.then((fh) => fh.close()).catch(() => undefined);
    await rm(this.path, { force: true });
  }
}

/**
 * Staged blobs: a tus upload's bytes written on each node into one file,
 * part after part, which becomes the file's blob by a rename when the upload
 * completes. Every byte is written once; completing costs no copy and no
 * second hash (docs/resumable-uploads.md, "How a resumable upload is
 * stored").
 *
 *   PUT  /staging/:key?offset=N   a part: written at N (chained like a blob PUT)
 *   POST /staging/:key/commit     the staged bytes become blob `blob`
 *   POST /staging/:key/cut?offset=N  a part that did not count, cut off
 *   DELETE /staging/:key, GET /staging
 *
 * The file holds the parts that completed, contiguous from byte 0: a part is
 * written at an offset no further than the file's end (a gap is refused, so
 * a node back from a crash or with an empty disk never holds a hole), and
 * whatever lay beyond that offset is cut first (a part sent again after the
 * gateway discarded it). Each part is fdatasynced before it is acknowledged.
 *
 * While parts arrive in order the node keeps, in memory, the sha256 and block
 * digests of the bytes so far (a BlockDigester) at the last two part ends, so
 * the commit only finishes them. After a restart, or out of order, the commit
 * reads the file once instead. Either way it checks the file against the
 * parts the gateway recorded (offset, size, sha256 of each).
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { mkdir, open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { TroveError } from '../shared/errors.js';
import { isValidKey } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import type { StagedPart } from '../shared/node-protocol.js';
import { writevAll } from '../shared/streams.js';
import type { BlobInfo, FsBlobStore } from './blob-store.js';
import { BlockDigester } from './block-sums.js';
import { DirSyncer } from './dir-syncer.js';

/** A part at an offset past the staged file's end: 409, nothing written. */
export class StagingGapError extends TroveError {
  constructor(
    readonly have: number,
    offset: number,
  ) {
    super(
      'STAGING_GAP',
      409,
      `this node holds ${have} staged bytes; a part at ${offset} would leave a gap`,
    );
  }

  override body() {
    return { error: { code: this.code, message: this.message }, have: this.have };
  }
}

/** The staged file does not hold the parts a commit names (short, or a part's bytes differ): 409, nothing committed. */
export class StagingMismatchError extends TroveError {
  constructor(
    readonly have: number,
    reason: string,
  ) {
    super('STAGING_MISMATCH', 409, `the staged bytes do not match the upload's parts: ${reason}`);
  }

  override body() {
    return { error: { code: this.code, message: this.message }, have: this.have };
  }
}

/** What this node knows of a staged file while its parts arrive in order. */
interface Progress {
  /** The parts written, contiguous from 0. */
  parts: StagedPart[];
  /** The digester at the end of the last part and, for a last part sent again, at its start. */
  at: Map<number, BlockDigester>;
}

/** Gathered before one writev. */
const WRITE_BATCH = 1024 * 1024;

export class StagingStore {
  private readonly progress = new Map<string, Progress>();
  /** One write or commit at a time per key (a gateway's retry may arrive while its dead predecessor's write drains). */
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly dirs = new DirSyncer();

  private constructor(
    private readonly dir: string,
    private readonly blobs: FsBlobStore,
    private readonly log: Logger,
  ) {}

  /** `root`/staging; what it holds survives a restart (unlike tmp/). */
  static async open(root: string, blobs: FsBlobStore, log: Logger): Promise<StagingStore> {
    const dir = join(root, 'staging');
    await mkdir(dir, { recursive: true });
    return new StagingStore(dir, blobs, log);
  }

  /** Writes `body` as the part at `offset`; answers its size and sha256 once it is on disk. */
  write(key: string, offset: number, body: Readable): Promise<StagedPart> {
    assertKey(key);
    return this.serially(key, () => this.writeNow(key, offset, body));
  }

  /**
   * Makes the staged bytes of `key`, which must be exactly `parts`, blob
   * `blob` (renamed, not copied). Done already (the file is gone and the
   * blob is there with the parts' size): answers the blob.
   */
  commit(key: string, blob: string, parts: StagedPart[]): Promise<BlobInfo> {
    assertKey(key);
    return this.serially(key, () => this.commitNow(key, blob, parts));
  }

  /** The staged bytes [offset, offset + size), as on disk: what a chain replays to a successor that failed. */
  read(key: string, offset: number, size: number): Readable {
    assertKey(key);
    if (size === 0) return Readable.from([]);
    return createReadStream(this.pathOf(key), { start: offset, end: offset + size - 1 });
  }

  async close(): Promise<void> {
    await this.dirs.close();
  }

  /**
   * Cuts the staged file back to its first `offset` bytes (removes it at 0):
   * a part the gateway did not count goes at once, not with the next part.
   */
  cut(key: string, offset: number): Promise<void> {
    assertKey(key);
    return this.serially(key, async () => {
      if (offset === 0) {
        await this.delete(key);
        return;
      }
      const file = await openForAppend(this.pathOf(key), offset);
      if (!file) return;
      try {
        if ((await file.stat()).size > offset) await file.truncate(offset);
        this.resumeAt(key, offset);
      } finally {
        await file.close();
      }
    });
  }

  /** Removes a staged file; false when there was none. */
  async delete(key: string): Promise<boolean> {
    assertKey(key);
    this.progress.delete(key);
    return unlink(this.pathOf(key)).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw err;
      },
    );
  }

  /** Every staged file: for the anti-entropy pass, which removes those of uploads that are gone. */
  async list(): Promise<{ key: string; size: number; mtimeMs: number }[]> {
    const out = [];
    for (const key of (await readdir(this.dir)).sort()) {
      const st = await stat(this.pathOf(key)).catch(() => undefined);
      if (st?.isFile()) out.push({ key, size: st.size, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  private pathOf(key: string): string {
    return join(this.dir, key);
  }

  private serially<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.then(
      () => {},
      () => {},
    );
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return run;
  }

  private async writeNow(key: string, offset: number, body: Readable): Promise<StagedPart> {
    const file = await openForAppend(this.pathOf(key), offset);
    if (!file) throw new StagingGapError(0, offset);
    try {
      const { size: have } = await file.stat();
      if (offset > have) throw new StagingGapError(have, offset);
      if (have > offset) await file.truncate(offset);
      const start = this.resumeAt(key, offset);
      try {
        const part = await appendPart(file, offset, body, start?.copy());
        await file.datasync();
        // The first part made the file: its name must reach the disk too.
        if (offset === 0) await this.dirs.sync(this.dir);
        this.recordPart(key, part.part, start, part.digester);
        return part.part;
      } catch (err) {
        // Back to what it held before this part: the file stays the parts that completed.
        await file.truncate(offset).catch(() => {});
        throw err;
      }
    } finally {
      await file.close();
    }
  }

  /** The digester at `offset`, when the parts so far came in order; the progress is cut back to it. */
  private resumeAt(key: string, offset: number): BlockDigester | undefined {
    if (offset === 0) {
      this.progress.set(key, { parts: [], at: new Map([[0, new BlockDigester()]]) });
      return this.progress.get(key)!.at.get(0);
    }
    const progress = this.progress.get(key);
    // From the end: the part before this one is the last (or, for a part sent again, the one before).
    const keep = progress?.parts.findLastIndex((p) => p.offset + p.size === offset) ?? -1;
    const digester = progress?.at.get(offset);
    if (!progress || keep < 0 || !digester) {
      this.progress.delete(key); // after a restart or a gap: the commit reads the file
      return undefined;
    }
    progress.parts.length = keep + 1;
    return digester;
  }

  private recordPart(
    key: string,
    part: StagedPart,
    before: BlockDigester | undefined,
    after: BlockDigester | undefined,
  ): void {
    const progress = this.progress.get(key);
    if (!progress || !before || !after) return;
    progress.parts.push(part);
    progress.at = new Map([
      [part.offset, before],
      [part.offset + part.size, after],
    ]);
  }

  private async commitNow(key: string, blob: string, parts: StagedPart[]): Promise<BlobInfo> {
    const size = partsEnd(parts);
    const path = this.pathOf(key);
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      return undefined;
    });
    if (!st) {
      const done = await this.blobs.stat(blob);
      if (done && done.size === size) return done;
      throw new StagingMismatchError(0, 'nothing is staged on this node');
    }
    if (st.size < size) throw new StagingMismatchError(st.size, `${st.size} of ${size} bytes`);
    const digest = this.digestInMemory(key, parts) ?? (await this.digestFromDisk(path, parts));
    if (st.size > size) await truncateDurably(path, size);
    const info: BlobInfo = { key: blob, size, sha256: digest.sha256, mtimeMs: Date.now() };
    await this.blobs.adopt(path, info, digest.digests);
    this.progress.delete(key);
    this.log.debug({ key, blob, size }, 'staged blob committed');
    return info;
  }

  /** The digest kept while the parts came in order, when those parts are exactly `parts`. */
  private digestInMemory(key: string, parts: StagedPart[]) {
    const progress = this.progress.get(key);
    const digester = progress?.at.get(partsEnd(parts));
    if (!progress || !digester || !sameParts(progress.parts, parts)) return undefined;
    return digester.copy().finish();
  }

  /** One read of the file: each part's sha256 checked, the whole digested. */
  private async digestFromDisk(path: string, parts: StagedPart[]) {
    const digester = new BlockDigester();
    const size = partsEnd(parts);
    let index = 0;
    let partHash = createHash('sha256');
    let partLeft = parts[0]?.size ?? 0;
    const closePart = () => {
      const part = parts[index]!;
      if (partHash.digest('hex') !== part.sha256)
        throw new StagingMismatchError(part.offset, `the part at ${part.offset} differs`);
      index++;
      partHash = createHash('sha256');
      partLeft = parts[index]?.size ?? 0;
    };
    while (index < parts.length && partLeft === 0) closePart(); // empty parts
    if (size > 0)
      for await (const chunk of createReadStream(path, {
        end: size - 1,
        highWaterMark: WRITE_BATCH,
      })) {
        let buf = chunk as Buffer;
        digester.update(buf);
        while (buf.length > 0) {
          const piece = buf.subarray(0, partLeft);
          partHash.update(piece);
          partLeft -= piece.length;
          buf = buf.subarray(piece.length);
          while (index < parts.length && partLeft === 0) closePart();
        }
      }
    if (index < parts.length) throw new StagingMismatchError(0, 'the staged file ended early');
    return digester.finish();
  }
}

/** Streams `body` to the end of `file` (at `offset`), hashing the part and, when given, the whole. */
async function appendPart(
  file: FileHandle,
  offset: number,
  body: Readable,
  digester: BlockDigester | undefined,
): Promise<{ part: StagedPart; digester: BlockDigester | undefined }> {
  const hash = createHash('sha256');
  let size = 0;
  let batch: Buffer[] = [];
  let batched = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    hash.update(buf);
    digester?.update(buf);
    size += buf.length;
    batch.push(buf);
    batched += buf.length;
    if (batched >= WRITE_BATCH) {
      await writevAll(file, batch);
      batch = [];
      batched = 0;
    }
  }
  await writevAll(file, batch);
  return { part: { offset, size, sha256: hash.digest('hex') }, digester };
}

/**
 * O_APPEND: after the truncate to `offset`, every write lands at the file's
 * end, that is at `offset`. Only the first part creates the file: a later
 * one on a node that has none (back with an empty disk) is a gap.
 */
async function openForAppend(path: string, offset: number): Promise<FileHandle | undefined> {
  if (offset === 0) return open(path, 'a');
  return open(path, constants.O_WRONLY | constants.O_APPEND).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

async function truncateDurably(path: string, size: number): Promise<void> {
  const file = await open(path, 'r+');
  try {
    await file.truncate(size);
    await file.datasync();
  } finally {
    await file.close();
  }
}

function partsEnd(parts: StagedPart[]): number {
  const last = parts.at(-1);
  return last ? last.offset + last.size : 0;
}

function sameParts(a: StagedPart[], b: StagedPart[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (p, i) => p.offset === b[i]!.offset && p.size === b[i]!.size && p.sha256 === b[i]!.sha256,
    )
  );
}

function assertKey(key: string): void {
  if (!isValidKey(key)) throw new Error(`invalid staging key ${JSON.stringify(key)}`);
}

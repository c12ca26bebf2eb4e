/**
 * Blobs on local disk.
 *
 * Layout under the data directory:
 *   blobs/ab/<key>@<sha256>   committed blobs; `ab` is a hash of the key (256
 *                             directories, created at start), the checksum lives
 *                             in the name, and an operator finds a file's bytes
 *                             with `find -name '<id>*'`
 *   blobs/ab/<key>@<sha256>.blocks
 *                             block sums of a blob over 1 MiB (block-sums.ts):
 *                             a ranged read verifies only the blocks it touches
 *   tmp/                      uploads in progress; emptied at start-up
 *   quarantine/               blobs that failed their checksum, kept for inspection
 *
 * A write goes temp file → fdatasync → rename → fsync of the directory, so a
 * blob is either absent or complete and durable; no reader sees a partial one.
 * Its sidecar is fsynced and renamed into place just before it, so one
 * directory fsync covers both. A crash between the two renames leaves either
 * a blob without sums (read as a blob from before block sums: verified whole,
 * and the scrubber writes them) or sums without a blob (removed at start-up).
 *
 * Like Bitcask's keydir, every key's checksum and size are also held in
 * memory (about 200 bytes a blob), loaded from the directory listing at
 * start. Reads and writes then go straight to the file's name: no directory
 * listing or stat per request. The disk stays the truth: `list` walks it.
 */
import { createHash, randomBytes } from 'node:crypto';
import fsCb, { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  ChecksumMismatchError,
  CorruptBlobError,
  InsufficientStorageError,
} from '../shared/errors.js';
import { isValidKey } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { pipeChain } from '../shared/streams.js';
import { BlockChecksumError, BlockVerifiedRange } from './block-range.js';
import {
  BLOCK_SIZE,
  BlockHashStage,
  CorruptSumsError,
  SUMS_SUFFIX,
  SumsFile,
  encodeSums,
  needsSums,
} from './block-sums.js';
import { DirSyncer } from './dir-syncer.js';
import { DurableFileSink, writeDurableFile, writeSmallFileDurably } from './durable-file.js';
import { readFully } from './file-read.js';
import { VerifiedRange } from './verified-range.js';

export interface BlobInfo {
  key: string;
  size: number;
  sha256: string;
  mtimeMs: number;
}

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export interface BlobRead {
  info: BlobInfo;
  range: ByteRange | undefined;
  /** The requested bytes; fails instead of ending if the blob's sha256 does not verify. */
  stream: Readable;
  /** The same bytes, already read and verified, when the blob is small (one read). */
  data?: Buffer;
  /**
   * Every byte is checked before the stream passes it on (a small blob, or
   * block by block), so a stream that fails has only passed on good bytes;
   * false when the whole blob's sha256 is checked as it streams, with the
   * last chunk held back (a blob without usable block sums).
   */
  verifiedBeforeSend: boolean;
}

export interface BlobPage {
  blobs: BlobInfo[];
  /** Opaque cursor for the next page; null after the last one. */
  next: string | null;
}

export interface PutOptions {
  /** The blob must have this sha256, or nothing is stored. */
  expectedSha256?: string;
  /**
   * The block digests of the bytes to come, known already (a compose of parts
   * that end on block boundaries): only the whole sha256 is computed.
   */
  blockDigests?: Buffer[];
}

export interface BlobStore {
  /** Streams `body` to durable storage; resolves once it is fsynced and visible. */
  put(key: string, body: Readable, opts?: PutOptions): Promise<BlobInfo>;
  /** As put, for a small blob (at most SMALL_BLOB bytes) already whole in memory. */
  putSmall(key: string, data: Buffer, opts?: { expectedSha256?: string }): Promise<BlobInfo>;
  /** Opens a blob (or a range of it) for a verified read; undefined when absent. */
  get(key: string, range?: (size: number) => ByteRange | undefined): Promise<BlobRead | undefined>;
  stat(key: string): Promise<BlobInfo | undefined>;
  /**
   * A blob's bytes as they are on disk, unverified (undefined when absent):
   * for composing, whose result's sha256 the gateway compares across nodes.
   */
  readRaw(key: string): Promise<{ info: BlobInfo; stream: Readable } | undefined>;
  /**
   * The sha256 of each BLOCK_SIZE block of a blob (its own sha256 for a blob
   * of one block), from its sidecar; undefined when it has none or it does not
   * check out. What a composed blob reuses instead of hashing its blocks again.
   */
  blockDigests(key: string): Promise<Buffer[] | undefined>;
  /** As stat, once the blob's file is confirmed on disk (a file removed behind the store's back is forgotten). */
  statOnDisk(key: string): Promise<BlobInfo | undefined>;
  /** Removes a blob; false if it was not there. */
  delete(key: string): Promise<boolean>;
  /** Lists blobs in a stable order, `limit` at a time. */
  list(after: string | undefined, limit: number): Promise<BlobPage>;
  usage(): Promise<{ objects: number; bytes: number; freeBytes: number; totalBytes: number }>;
  /** Bytes read from disk to serve reads since the store opened (blobs and their block sums). */
  bytesReadFromDisk(): number;
  close(): Promise<void>;
}

export interface FsBlobStoreOptions {
  /** Where a dropped (corrupt) sidecar is reported. */
  log?: Logger;
}

const NAME = /^([A-Za-z0-9._-]{1,160})@([0-9a-f]{64})$/;
const SUMS_NAME = /^([A-Za-z0-9._-]{1,160})@([0-9a-f]{64})\.blocks$/;
/** Read size when streaming a large blob: fewer, larger chunks cost less per byte (measured: ~15 % faster than 256 KiB). */
const MAX_READ_CHUNK = 1024 * 1024;
/**
 * Blobs up to this size are read whole, in one read, and verified before
 * anything is sent. One read chunk: streaming holds as much (the held-back
 * last chunk), and a single exact-size buffer halves the node's CPU for a
 * 0.9 MB photo (measured 6.0 → 3.0-3.6 ms: a 1 MiB stream buffer read short
 * is copied again, and the garbage collector pays for both).
 */
export const SMALL_BLOB = MAX_READ_CHUNK;

const fsOpen = promisify(fsCb.open);
const fsClose = promisify(fsCb.close);

function checkExpected(expected: string | undefined, actual: string): void {
  if (expected && expected !== actual) throw new ChecksumMismatchError(expected, actual);
}

function onceReadable(data: Buffer): Readable {
  return new Readable({
    read() {
      this.push(data);
      this.push(null);
    },
  });
}

/** 256 leaf directories named 00..ff by FNV-1a of the key: cheap, stable, evenly spread. */
function leafName(key: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return ((h ^ (h >>> 16)) & 0xff).toString(16).padStart(2, '0');
}

export class FsBlobStore implements BlobStore {
  private readonly blobsDir: string;
  private readonly tmpDir: string;
  private readonly quarantineDir: string;
  private readonly tmpTag = randomBytes(4).toString('hex');
  private tmpSeq = 0;
  private readonly dirs = new DirSyncer();
  private readonly index = new Map<string, BlobInfo>();
  private bytes = 0;
  private diskReads = 0;
  private readonly log: Logger | undefined;
  private readonly counted = (n: number) => (this.diskReads += n);

  private constructor(
    readonly root: string,
    opts: FsBlobStoreOptions,
  ) {
    this.blobsDir = join(root, 'blobs');
    this.tmpDir = join(root, 'tmp');
    this.quarantineDir = join(root, 'quarantine');
    this.log = opts.log;
  }

  /** Opens (creating if needed) a store, discards leftover temp files and loads the index. */
  static async open(root: string, opts: FsBlobStoreOptions = {}): Promise<FsBlobStore> {
    const store = new FsBlobStore(root, opts);
    await rm(store.tmpDir, { recursive: true, force: true });
    for (const dir of [store.blobsDir, store.tmpDir, store.quarantineDir]) {
      await mkdir(dir, { recursive: true });
    }
    let created = false;
    for (let i = 0; i < 256; i++) {
      created =
        (await mkdir(store.leaf(i.toString(16).padStart(2, '0')), { recursive: true })) !==
          undefined || created;
    }
    // New directories must reach the disk too, or a crash can orphan the blobs inside them.
    if (created) await store.dirs.sync(store.blobsDir);
    await store.dirs.sync(root);
    await store.loadIndex();
    return store;
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<BlobInfo> {
    assertKey(key);
    const tmp = this.tmpPath(key);
    const hasher = new BlockHashStage(opts.blockDigests);
    let committed = false;
    try {
      const file = await open(tmp, 'wx');
      try {
        await pipeChain(body, hasher, new DurableFileSink(file));
      } finally {
        await file.close();
      }
      const { sha256, size, digests } = hasher.digester.finish();
      checkExpected(opts.expectedSha256, sha256);
      const info = { key, size, sha256, mtimeMs: Date.now() };
      committed = await this.place(tmp, info, digests);
      return info;
    } catch (err) {
      throw mapDiskError(err);
    } finally {
      if (!committed) await unlink(tmp).catch(ignoreMissing);
    }
  }

  /**
   * Makes `path`, a file already written and fdatasynced on this store's
   * disk (a staged upload, storage-node/staging-store.ts), blob `info` by a
   * rename: no byte is copied. `digests` are its block digests.
   */
  async adopt(path: string, info: BlobInfo, digests: Buffer[]): Promise<void> {
    assertKey(info.key);
    await this.place(path, info, digests).catch((err: unknown) => {
      throw mapDiskError(err);
    });
  }

  /** Block sums (when the size needs them) then the blob renamed into place; true once it is. */
  private async place(file: string, info: BlobInfo, digests: Buffer[]): Promise<boolean> {
    // The sums first: a blob visible without them would only be verified the slow way.
    if (needsSums(info.size))
      await this.placeSums(info, encodeSums(info.sha256, info.size, digests));
    return this.commit(file, info);
  }

  /**
   * As put, for a blob of at most SMALL_BLOB bytes (one block: no sums)
   * already whole in memory: hashed in one call and written in one, with
   * callback fs calls. Same durability: fdatasync, rename, directory fsync.
   */
  async putSmall(
    key: string,
    data: Buffer,
    opts: { expectedSha256?: string } = {},
  ): Promise<BlobInfo> {
    assertKey(key);
    if (data.length > SMALL_BLOB)
      throw new RangeError(`putSmall takes at most ${SMALL_BLOB} bytes`);
    const sha256 = createHash('sha256').update(data).digest('hex');
    checkExpected(opts.expectedSha256, sha256);
    const tmp = this.tmpPath(key);
    let committed = false;
    try {
      await writeSmallFileDurably(tmp, data);
      committed = await this.commit(tmp, { key, size: data.length, sha256, mtimeMs: Date.now() });
      return this.index.get(key)!;
    } catch (err) {
      throw mapDiskError(err);
    } finally {
      if (!committed) await unlink(tmp).catch(ignoreMissing);
    }
  }

  /**
   * A temp name no other write has: this store's random tag and a sequence
   * number, cheaper than random bytes on every write.
   */
  private nextTmp(): string {
    return `${this.tmpTag}${(++this.tmpSeq).toString(36)}`;
  }

  private tmpPath(key: string): string {
    return join(this.tmpDir, `${key}.${this.nextTmp()}.tmp`);
  }

  /**
   * Renames a written, fdatasynced temp file into place as blob `info` and
   * makes the rename durable; true once renamed (the temp file is gone).
   */
  private async commit(tmp: string, info: BlobInfo): Promise<boolean> {
    await rename(tmp, this.pathOf(info));
    const previous = this.remember(info);
    // An overwrite with different bytes leaves the old name behind; drop it now the new one is in place.
    if (previous && previous.sha256 !== info.sha256) await this.unlinkFiles(previous);
    // Without this fsync the rename may be lost on power failure even though the data is on disk.
    await this.dirs.sync(this.leaf(leafName(info.key)));
    return true;
  }

  async get(
    key: string,
    rangeOf?: (size: number) => ByteRange | undefined,
  ): Promise<BlobRead | undefined> {
    assertKey(key);
    const info = this.index.get(key);
    if (!info) return undefined;
    const range = rangeOf?.(info.size);
    const fd = await this.reopen(info);
    if (fd === undefined) return undefined;
    const span = range ?? { start: 0, end: info.size - 1 };
    if (info.size <= SMALL_BLOB) return { ...(await this.readSmall(info, fd, span)), range };
    // Block by block, a range or the whole blob: each byte checked once, before it leaves.
    const sums = await this.openSums(info, fd);
    if (!sums) return { ...this.readStreaming(info, fd, span), range };
    const read = await this.readBlocks(info, fd, sums, span);
    if (read) return { ...read, range };
    // The first block met a damaged sidecar (now dropped): verify the whole blob instead.
    const again = await this.reopen(info);
    return again === undefined ? undefined : { ...this.readStreaming(info, again, span), range };
  }

  /** The blob's file, open for reading; undefined (and forgotten) when it is gone. */
  private async reopen(info: BlobInfo): Promise<number | undefined> {
    return fsOpen(this.pathOf(info), 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      this.forget(info.key); // removed behind our back (an operator, a wiped disk): it is gone
      return undefined;
    });
  }

  /** The blob's sidecar, if it has a usable one; a corrupt one is dropped (and the read verifies the whole blob). */
  private async openSums(info: BlobInfo, fd: number): Promise<SumsFile | undefined> {
    try {
      return await SumsFile.open(this.sumsPathOf(info), info, this.counted);
    } catch (err) {
      if (!(err instanceof CorruptSumsError)) {
        await fsClose(fd);
        throw err;
      }
      await this.dropSums(info, err);
      return undefined;
    }
  }

  /**
   * A small blob is read in one go and checked before a byte leaves: a corrupt
   * one is quarantined and reported, never sent. (Callback fs calls: for 64 KiB
   * they cost a quarter of a FileHandle stream's CPU.)
   */
  private async readSmall(
    info: BlobInfo,
    fd: number,
    span: ByteRange,
  ): Promise<Omit<BlobRead, 'range'>> {
    let bytes: Buffer;
    try {
      // One byte more than expected, to notice a file that grew; a short read is not its end.
      const buf = Buffer.allocUnsafe(info.size + 1);
      bytes = buf.subarray(0, await readFully(fd, buf, 0, buf.length, 0, info.size));
      this.counted(bytes.length);
    } finally {
      await fsClose(fd);
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== info.sha256) {
      await this.quarantine(info);
      throw new CorruptBlobError(info.key, info.sha256, actual);
    }
    const data = bytes.subarray(span.start, span.end + 1);
    return { info, data, stream: onceReadable(data), verifiedBeforeSend: true };
  }

  /** A larger blob streams, hashed as it goes; see VerifiedRange for what a failed check does. */
  private readStreaming(info: BlobInfo, fd: number, span: ByteRange): Omit<BlobRead, 'range'> {
    const source = createReadStream('', { fd, highWaterMark: MAX_READ_CHUNK });
    const verify = new VerifiedRange(info.sha256, span);
    source.on('error', (err) => verify.destroy(err));
    verify.on('error', (err) => {
      if (err instanceof ChecksumMismatchError) void this.quarantine(info);
    });
    // However the reader stops (error, destroy, early close), release the file.
    verify.once('close', () => source.destroy());
    source.pipe(verify);
    // Added once piped, so this listener does not start the flow on its own.
    source.on('data', (chunk) => this.counted(chunk.length));
    return { info, stream: verify, verifiedBeforeSend: false };
  }

  /**
   * A range of a large blob with block sums: only its blocks are read; see
   * BlockVerifiedRange. Its first block is checked before anything is sent: a
   * corrupt one is quarantined and reported as for a small blob (404, and the
   * gateway reads another replica); a damaged sidecar answers undefined, for
   * the caller to verify the whole blob instead.
   */
  private async readBlocks(
    info: BlobInfo,
    fd: number,
    sums: SumsFile,
    span: ByteRange,
  ): Promise<Omit<BlobRead, 'range'> | undefined> {
    const stream = new BlockVerifiedRange({
      fd,
      sums,
      size: info.size,
      span,
      counted: this.counted,
    });
    try {
      await stream.start();
    } catch (err) {
      stream.destroy();
      if (err instanceof BlockChecksumError) {
        await this.quarantine(info);
        throw new CorruptBlobError(info.key, `block ${err.block} ${err.expected}`, err.actual);
      }
      if (!(err instanceof CorruptSumsError)) throw err;
      await this.dropSums(info, err);
      return undefined;
    }
    // Later blocks fail mid-stream: the only signal left then is a cut connection.
    stream.on('error', (err) => {
      if (err instanceof ChecksumMismatchError) void this.quarantine(info);
      else if (err instanceof CorruptSumsError) void this.dropSums(info, err);
    });
    return { info, stream, verifiedBeforeSend: true };
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    assertKey(key);
    return this.index.get(key);
  }

  async readRaw(key: string): Promise<{ info: BlobInfo; stream: Readable } | undefined> {
    const info = await this.statOnDisk(key);
    if (!info) return undefined;
    const stream = createReadStream(this.pathOf(info), { highWaterMark: BLOCK_SIZE });
    stream.on('data', (chunk) => this.counted(chunk.length));
    return { info, stream };
  }

  async blockDigests(key: string): Promise<Buffer[] | undefined> {
    const info = await this.stat(key);
    if (!info) return undefined;
    if (!needsSums(info.size)) return [Buffer.from(info.sha256, 'hex')];
    // Any doubt about the sidecar (none, damaged, another block size): the digests are computed.
    const sums = await SumsFile.open(this.sumsPathOf(info), info, this.counted).catch(
      () => undefined,
    );
    if (!sums) return undefined;
    try {
      if (sums.blockSize !== BLOCK_SIZE || !(await sums.intact())) return undefined;
      const digests: Buffer[] = [];
      for (let i = 0; i < sums.blocks; i++) digests.push(Buffer.from(await sums.digest(i)));
      return digests;
    } catch {
      return undefined;
    } finally {
      await sums.close();
    }
  }

  async statOnDisk(key: string): Promise<BlobInfo | undefined> {
    const info = await this.stat(key);
    if (!info) return undefined;
    const onDisk = await stat(this.pathOf(info)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      return undefined;
    });
    if (onDisk) return info;
    this.forget(info.key); // removed behind our back (an operator, a wiped disk): it is gone
    return undefined;
  }

  async delete(key: string): Promise<boolean> {
    assertKey(key);
    const info = this.index.get(key);
    if (!info) return false;
    this.forget(key);
    await this.unlinkFiles(info);
    await this.dirs.sync(this.leaf(leafName(key)));
    return true;
  }

  async list(after: string | undefined, limit: number): Promise<BlobPage> {
    const blobs: BlobInfo[] = [];
    const [afterDir = '', afterName = ''] = after ? after.split('/') : [];
    for (const dir of await sortedDir(this.blobsDir)) {
      if (dir < afterDir) continue;
      const leaf = join(this.blobsDir, dir);
      for (const name of await sortedDir(leaf)) {
        if (dir === afterDir && name <= afterName) continue;
        const info = await infoOf(leaf, name);
        if (!info) continue;
        blobs.push(info);
        if (blobs.length === limit) return { blobs, next: `${dir}/${name}` };
      }
    }
    return { blobs, next: null };
  }

  async usage() {
    const fs = await statfs(this.root);
    return {
      objects: this.index.size,
      bytes: this.bytes,
      freeBytes: fs.bavail * fs.bsize,
      totalBytes: fs.blocks * fs.bsize,
    };
  }

  bytesReadFromDisk(): number {
    return this.diskReads;
  }

  async close(): Promise<void> {
    await this.dirs.close();
  }

  /**
   * Moves a blob that failed its checksum aside, so it is never served again
   * (a failed read, or the scrubber). False when that version is no longer the
   * current one (deleted, replaced or already quarantined meanwhile).
   */
  async quarantine(info: BlobInfo): Promise<boolean> {
    if (this.index.get(info.key)?.sha256 !== info.sha256) return false; // replaced meanwhile
    this.forget(info.key);
    const aside = join(this.quarantineDir, `${info.key}@${info.sha256}.${Date.now()}`);
    await rename(this.pathOf(info), aside).catch(() => undefined);
    // The sums go along, for whoever inspects which block went bad.
    if (needsSums(info.size))
      await rename(this.sumsPathOf(info), aside + SUMS_SUFFIX).catch(() => undefined);
    return true;
  }

  /**
   * Writes the block sums of a blob that has none or a damaged one (the
   * scrubber, once the whole blob verified). False when that version is no
   * longer the current one.
   */
  async writeSums(info: BlobInfo, sums: Buffer): Promise<boolean> {
    if (this.index.get(info.key)?.sha256 !== info.sha256) return false;
    await this.placeSums(info, sums);
    // Deleted or replaced while we wrote: do not leave sums without their blob.
    if (this.index.get(info.key)?.sha256 !== info.sha256) {
      await unlink(this.sumsPathOf(info)).catch(ignoreMissing);
      return false;
    }
    await this.dirs.sync(this.leaf(leafName(info.key)));
    return true;
  }

  /** Sidecar temp file → fdatasync → rename beside the blob; the caller fsyncs the directory. */
  private async placeSums(info: BlobInfo, sums: Buffer): Promise<void> {
    const tmp = join(this.tmpDir, `${info.key}.${this.nextTmp()}.blocks.tmp`);
    try {
      await writeDurableFile(tmp, sums);
      await rename(tmp, this.sumsPathOf(info));
    } catch (err) {
      await unlink(tmp).catch(ignoreMissing);
      throw err;
    }
  }

  /**
   * Removes a damaged sidecar (if that blob version is still current): later
   * ranged reads verify the whole blob until the scrubber rebuilds it. The
   * blob itself is not suspect.
   */
  private async dropSums(info: BlobInfo, err: CorruptSumsError): Promise<void> {
    this.log?.warn({ key: info.key, err: err.message }, 'corrupt block sums dropped');
    if (this.index.get(info.key)?.sha256 !== info.sha256) return;
    await unlink(this.sumsPathOf(info)).catch(() => undefined);
  }

  /** Unlinks a version's blob file and its sums. */
  private async unlinkFiles(info: BlobInfo): Promise<void> {
    await unlink(this.pathOf(info)).catch(ignoreMissing);
    if (needsSums(info.size)) await unlink(this.sumsPathOf(info)).catch(ignoreMissing);
  }

  /** Records a committed blob; returns the entry it replaces. */
  private remember(info: BlobInfo): BlobInfo | undefined {
    const previous = this.index.get(info.key);
    this.index.set(info.key, info);
    this.bytes += info.size - (previous?.size ?? 0);
    return previous;
  }

  private forget(key: string): void {
    const info = this.index.get(key);
    if (!info) return;
    this.index.delete(key);
    this.bytes -= info.size;
  }

  private leaf(name: string): string {
    return join(this.blobsDir, name);
  }

  /** The committed file of this version of a blob (the scrubber reads it directly). */
  pathOf(info: BlobInfo): string {
    return join(this.leaf(leafName(info.key)), `${info.key}@${info.sha256}`);
  }

  /** The block sums sidecar of this version of a blob (only blobs over 1 MiB have one). */
  sumsPathOf(info: BlobInfo): string {
    return this.pathOf(info) + SUMS_SUFFIX;
  }

  /** Builds the index from the disk. Of two versions of a key (a crash mid-overwrite) the newer wins. */
  private async loadIndex(): Promise<void> {
    let after: string | undefined;
    do {
      const page = await this.list(after, 1000);
      for (const info of page.blobs) {
        const existing = this.index.get(info.key);
        if (existing && existing.mtimeMs >= info.mtimeMs) {
          await unlink(this.pathOf(info)).catch(ignoreMissing);
          continue;
        }
        if (existing) await unlink(this.pathOf(existing)).catch(ignoreMissing);
        this.remember(info);
      }
      after = page.next ?? undefined;
    } while (after);
    await this.removeOrphanSums();
  }

  /** Sums whose blob version is not the current one: a crash between the two renames, or a lost race. */
  private async removeOrphanSums(): Promise<void> {
    for (const dir of await sortedDir(this.blobsDir)) {
      const leaf = join(this.blobsDir, dir);
      for (const name of await sortedDir(leaf)) {
        const match = SUMS_NAME.exec(name);
        if (match && this.index.get(match[1]!)?.sha256 !== match[2])
          await unlink(join(leaf, name)).catch(ignoreMissing);
      }
    }
  }
}

function assertKey(key: string): void {
  if (!isValidKey(key)) throw new Error(`invalid blob key ${JSON.stringify(key)}`);
}

async function infoOf(leaf: string, name: string): Promise<BlobInfo | undefined> {
  const match = NAME.exec(name);
  if (!match) return undefined;
  const st = await stat(join(leaf, name)).catch(() => undefined);
  if (!st?.isFile()) return undefined;
  return { key: match[1]!, size: st.size, sha256: match[2]!, mtimeMs: st.mtimeMs };
}

async function sortedDir(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.sort();
}

function ignoreMissing(err: NodeJS.ErrnoException): false {
  if (err.code === 'ENOENT') return false;
  throw err;
}

function mapDiskError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new InsufficientStorageError(undefined, { cause: err });
  return err;
}

/**
 * Block sums: a sha256 of every 1 MiB block of a blob, kept in a sidecar file
 * beside it (`<key>@<sha256>.blocks`), so that a ranged read verifies only the
 * blocks it touches instead of the whole blob (as Garage's block hashes and
 * MinIO's bitrot blocks do). The whole-blob sha256 stays the blob's identity;
 * the sums are derived data, computed in the same pass that hashes the upload.
 *
 * Sidecar layout (integers big-endian):
 *
 *   0   8   magic "TROVEBS1"
 *   8   4   block size in bytes
 *   12  8   blob size in bytes
 *   20  32  the blob's sha256 (raw), so a sidecar names the version it belongs to
 *   52  32n the sha256 of each block, n = ceil(blob size / block size)
 *   ..  32  sha256 of everything above: tells a rotten sidecar from a rotten blob
 *
 * A damaged sidecar can only make a good block look bad (a flipped digest
 * never matches real data), never a bad block look good; the trailer lets a
 * reader that sees a mismatch tell which of the two files is at fault.
 */
import { createHash, type Hash } from 'node:crypto';
import fsCb from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { readFully } from './file-read.js';

/** Block size of new sidecars; also the read size of a verified ranged read. */
export const BLOCK_SIZE = 1024 * 1024;
/** Suffix of a blob's sidecar; never matches a blob's name (which ends in its sha256). */
export const SUMS_SUFFIX = '.blocks';

const MAGIC = Buffer.from('TROVEBS1');
const HEADER_BYTES = 52;
const DIGEST_BYTES = 32;
/** Digests read at once by a ranged read: 32 KiB, the sums of 1 GiB of blob. */
const DIGEST_BATCH = 1024;
/** Read size when re-hashing a whole sidecar. */
const CHECK_CHUNK = 64 * 1024;

const fsOpen = promisify(fsCb.open);
const fsClose = promisify(fsCb.close);
const fsFstat = promisify(fsCb.fstat);

/** Blobs up to one block are read whole and checked against their sha256: no sidecar. */
export function needsSums(size: number): boolean {
  return size > BLOCK_SIZE;
}

/** The sidecar's size for a blob of `size` bytes. */
function sumsBytes(size: number, blockSize: number): number {
  return HEADER_BYTES + Math.ceil(size / blockSize) * DIGEST_BYTES + DIGEST_BYTES;
}

/**
 * The whole blob's sha256, its size and one sha256 per block, in one pass
 * over its bytes. Block 0 costs nothing extra: at its end the whole-blob hash
 * has seen exactly it, so its digest is a copy of that hash. Blobs of one
 * block (most photos) thus hash their bytes once, larger ones twice.
 */
export class BlockDigester {
  private whole: Hash = createHash('sha256');
  /**
   * With `known` (the block digests of the bytes to come, from the parts a
   * blob is composed of), only the whole sha256 is computed.
   */
  constructor(private readonly known?: Buffer[]) {}

  /** Hash of the current block; undefined while in block 0. */
  private block: Hash | undefined;
  private inBlock = 0;
  private digests: Buffer[] = [];
  bytes = 0;

  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.known) {
      this.whole.update(chunk);
      return;
    }
    for (let at = 0; at < chunk.length;) {
      const piece = chunk.subarray(at, at + BLOCK_SIZE - this.inBlock);
      at += piece.length;
      this.inBlock += piece.length;
      this.whole.update(piece);
      this.block?.update(piece);
      if (this.inBlock === BLOCK_SIZE) {
        this.closeBlock();
        this.block = createHash('sha256');
      }
    }
  }

  /**
   * An independent digester in the same state: what a staged upload keeps at
   * each part's end, so a part sent again continues from there.
   */
  copy(): BlockDigester {
    const twin = new BlockDigester(this.known);
    twin.whole = this.whole.copy();
    twin.block = this.block?.copy();
    twin.inBlock = this.inBlock;
    twin.digests = this.digests.slice();
    twin.bytes = this.bytes;
    return twin;
  }

  /** Once every byte is in: the blob's sha256 (hex), size and block digests. */
  finish(): { sha256: string; size: number; digests: Buffer[] } {
    if (this.known) {
      const sha256 = this.whole.digest('hex');
      if (this.known.length !== Math.ceil(this.bytes / BLOCK_SIZE))
        throw new Error(`${this.known.length} known block digests for ${this.bytes} bytes`);
      return { sha256, size: this.bytes, digests: this.known };
    }
    // Still in block 0 (a blob of one block): its digest is the whole one, no copy needed.
    const whole = this.block || this.inBlock === 0 ? undefined : this.whole.digest();
    if (whole) this.digests.push(whole);
    else if (this.inBlock > 0) this.closeBlock();
    const sha256 = (whole ?? this.whole.digest()).toString('hex');
    return { sha256, size: this.bytes, digests: this.digests };
  }

  private closeBlock(): void {
    this.digests.push((this.block ?? this.whole.copy()).digest());
    this.inBlock = 0;
  }
}

/** A pipeline stage that passes bytes on unchanged while a BlockDigester sees them. */
export class BlockHashStage extends Transform {
  readonly digester: BlockDigester;
  constructor(known?: Buffer[]) {
    super();
    this.digester = new BlockDigester(known);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.digester.update(chunk);
    done(null, chunk);
  }
}

/** The sidecar's bytes for a blob. */
export function encodeSums(sha256: string, size: number, digests: Buffer[]): Buffer {
  if (digests.length !== Math.ceil(size / BLOCK_SIZE))
    throw new Error(`${digests.length} block digests for ${size} bytes`);
  const out = Buffer.alloc(sumsBytes(size, BLOCK_SIZE));
  MAGIC.copy(out, 0);
  out.writeUInt32BE(BLOCK_SIZE, 8);
  out.writeBigUInt64BE(BigInt(size), 12);
  out.write(sha256, 20, 'hex');
  digests.forEach((d, i) => d.copy(out, HEADER_BYTES + i * DIGEST_BYTES));
  const body = out.subarray(0, out.length - DIGEST_BYTES);
  createHash('sha256').update(body).digest().copy(out, body.length);
  return out;
}

/** A sidecar that cannot be trusted: the blob itself may be fine. */
export class CorruptSumsError extends Error {
  readonly code = 'CORRUPT_BLOCK_SUMS';
}

/** The blob a sidecar must describe. */
interface SumsOwner {
  size: number;
  sha256: string;
}

/**
 * An open sidecar, read lazily: its header at open, then the digests a ranged
 * read needs, a batch at a time, so memory stays flat however large the blob.
 */
export class SumsFile {
  private batchStart = 0;
  private batch: Buffer = Buffer.alloc(0);

  private constructor(
    private readonly fd: number,
    readonly blockSize: number,
    readonly blocks: number,
    private readonly length: number,
    private readonly counted: (bytes: number) => void,
  ) {}

  /**
   * Opens the sidecar at `path` for `owner`: undefined when there is none (a
   * blob stored before block sums existed); throws CorruptSumsError when its
   * header or length do not fit the blob.
   */
  static async open(
    path: string,
    owner: SumsOwner,
    counted: (bytes: number) => void = () => {},
  ): Promise<SumsFile | undefined> {
    const fd = await fsOpen(path, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (fd === undefined) return undefined;
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      const got = await readFully(fd, header, 0, HEADER_BYTES, 0);
      counted(got);
      const blockSize = header.readUInt32BE(8);
      const problem =
        got < HEADER_BYTES
          ? 'short header'
          : !header.subarray(0, 8).equals(MAGIC)
            ? 'bad magic'
            : blockSize < 4096 || blockSize > 64 * 2 ** 20 || (blockSize & (blockSize - 1)) !== 0
              ? `block size ${blockSize}`
              : header.readBigUInt64BE(12) !== BigInt(owner.size)
                ? `blob size ${header.readBigUInt64BE(12)}, not ${owner.size}`
                : header.toString('hex', 20, 52) !== owner.sha256
                  ? 'another sha256'
                  : undefined;
      if (problem) throw new CorruptSumsError(`block sums: ${problem}`);
      const length = sumsBytes(owner.size, blockSize);
      const { size } = await fsFstat(fd);
      if (size !== length)
        throw new CorruptSumsError(`block sums: ${size} bytes, expected ${length}`);
      const blocks = Math.ceil(owner.size / blockSize);
      return new SumsFile(fd, blockSize, blocks, length, counted);
    } catch (err) {
      await fsClose(fd).catch(() => undefined);
      throw err;
    }
  }

  /** The stored sha256 of block `index`. */
  async digest(index: number): Promise<Buffer> {
    if (index < 0 || index >= this.blocks) throw new RangeError(`no block ${index}`);
    let at = index - this.batchStart;
    if (at < 0 || (at + 1) * DIGEST_BYTES > this.batch.length) {
      const count = Math.min(DIGEST_BATCH, this.blocks - index);
      const buf = Buffer.alloc(count * DIGEST_BYTES);
      const position = HEADER_BYTES + index * DIGEST_BYTES;
      const got = await readFully(this.fd, buf, 0, buf.length, position);
      this.counted(got);
      if (got < buf.length) throw new CorruptSumsError('block sums: file shrank');
      this.batch = buf;
      this.batchStart = index;
      at = 0;
    }
    return this.batch.subarray(at * DIGEST_BYTES, (at + 1) * DIGEST_BYTES);
  }

  /** Re-hashes the whole sidecar against its trailer: false when the sidecar itself rotted. */
  async intact(): Promise<boolean> {
    const hash = createHash('sha256');
    const body = this.length - DIGEST_BYTES;
    const buf = Buffer.alloc(CHECK_CHUNK);
    for (let at = 0; at < body;) {
      const want = Math.min(buf.length, body - at);
      const got = await readFully(this.fd, buf, 0, want, at);
      this.counted(got);
      if (got < want) return false;
      hash.update(buf.subarray(0, got));
      at += got;
    }
    const trailer = Buffer.alloc(DIGEST_BYTES);
    const got = await readFully(this.fd, trailer, 0, DIGEST_BYTES, body);
    this.counted(got);
    return got === DIGEST_BYTES && hash.digest().equals(trailer);
  }

  close(): Promise<void> {
    return fsClose(this.fd);
  }
}

/**
 * The gateway's cache of small blobs it has already read and verified, so a
 * popular image skips the hop to a storage node (and the node's disk read,
 * its checksum, and the gateway's own): the download handler still checks
 * the file's metadata and takes a counted download first; only the bytes
 * come from here.
 *
 * Safe without invalidation: a blob key names one file's original or one of
 * its variants, file ids are never reused, and a key's bytes never change
 * (the entry is also tied to its sha256). A deleted or expired file is
 * refused by its metadata before its cached bytes could be looked up, and
 * its entry ages out.
 *
 * Only whole-blob reads fill it, once the read stream has ended, which the
 * replica reader allows only when every byte verified (checked by the node
 * before it was sent, or against the blob's sha256 here): what is cached was
 * verified when read, as every byte served must be. Bounded in
 * bytes (least recently used go first); blobs over MAX_CACHED_BLOB stream as
 * before.
 */
import type { Readable } from 'node:stream';
import { fileIdOf } from '../../shared/keys.js';

/** The largest blob kept: small images and thumbnails, where the node hop costs most per byte. */
export const MAX_CACHED_BLOB = 1024 * 1024;

/** What the cache needs of a blob: its key, sha256 and size. */
export interface CacheableBlob {
  key: string;
  sha256: string;
  size: number;
}

export interface BlobCacheStats {
  hits: number;
  misses: number;
  bytes: number;
  entries: number;
}

export class BlobCache {
  /** Insertion order is recency order: a hit moves its entry to the end. */
  private readonly entries = new Map<string, { sha256: string; data: Buffer }>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;

  /** `maxBytes` 0 turns the cache off. */
  constructor(private readonly maxBytes: number) {}

  /** Whether a blob of this size can be kept at all. */
  fits(size: number): boolean {
    return size > 0 && size <= Math.min(MAX_CACHED_BLOB, this.maxBytes);
  }

  /** The blob's verified bytes, or undefined (counted as a miss when the blob could be cached). */
  get(blob: CacheableBlob): Buffer | undefined {
    if (!this.fits(blob.size)) return undefined;
    const entry = this.entries.get(blob.key);
    if (!entry || entry.sha256 !== blob.sha256) {
      this.misses++;
      return undefined;
    }
    this.entries.delete(blob.key);
    this.entries.set(blob.key, entry);
    this.hits++;
    return entry.data;
  }

  /**
   * Keeps the bytes of `stream`, a whole-blob read that ends only once they
   * all verified, when it ends. Listens without taking the flow:
   * call it after the stream is piped to its consumer.
   */
  fillFrom(blob: CacheableBlob, stream: Readable): void {
    if (!this.fits(blob.size)) return;
    const chunks: Buffer[] = [];
    let length = 0;
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
    });
    stream.once('end', () => {
      if (length === blob.size) this.put(blob, Buffer.concat(chunks, length));
    });
  }

  /** Drops the entries of every blob of file `fileId` (deleted through this gateway). */
  deleteFile(fileId: string): void {
    for (const key of this.entries.keys()) if (fileIdOf(key) === fileId) this.delete(key);
  }

  /** Drops a blob's entry. */
  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.data.length;
  }

  stats(): BlobCacheStats {
    return { hits: this.hits, misses: this.misses, bytes: this.bytes, entries: this.entries.size };
  }

  private put(blob: CacheableBlob, data: Buffer): void {
    this.delete(blob.key);
    this.entries.set(blob.key, { sha256: blob.sha256, data });
    this.bytes += data.length;
    for (const [key] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.delete(key);
    }
  }
}

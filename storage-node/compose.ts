/**
 * Composing a blob from parts already on this node (POST /blobs/:key/compose):
 * a resumable upload stores each request's bytes as a part, replicated like
 * any blob, and once it completes each node concatenates its own copies.
 *
 * The parts are read as stored and streamed, one after the other, into
 * store.put: the same durable write as a PUT, so the result cannot be told
 * from a blob PUT whole. It costs one sha256 pass: the parts are not verified
 * again (see PartsReader), and when they end on block boundaries their block
 * digests are the result's (no second pass for the block sums). Nothing is
 * held beyond one read chunk (1 MiB).
 * The parts are left in place: the caller deletes them once every replica has
 * composed.
 */
import { Readable } from 'node:stream';
import { ChecksumMismatchError, ClientGoneError, TroveError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { MissingPartsAnswer } from '../shared/node-protocol.js';
import type { BlobInfo, BlobStore } from './blob-store.js';
import { BLOCK_SIZE } from './block-sums.js';

/** Parts this node lacks (or found corrupt or gone while reading them): 409, nothing stored. */
export class MissingPartsError extends TroveError {
  constructor(readonly missing: string[]) {
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? ', …' : '');
    super('MISSING_PARTS', 409, `${missing.length} part(s) missing on this node: ${shown}`);
  }

  override body(): MissingPartsAnswer {
    return { error: { code: 'MISSING_PARTS', message: this.message }, missing: this.missing };
  }
}

/**
 * The composed bytes do not have the sha256 the caller expected: 422, as a
 * PUT whose X-Trove-Sha256 does not match, and nothing stored.
 */
export class ComposedSha256MismatchError extends TroveError {
  constructor(expected: string, cause: unknown) {
    super(
      'SHA256_MISMATCH',
      422,
      `the composed blob does not have the expected sha256 ${expected}`,
      { cause },
    );
  }
}

export interface ComposeDeps {
  store: BlobStore;
  log: Logger;
}

export interface ComposeOptions {
  /** When given, the composed blob must have it, or nothing is stored. */
  expectedSha256?: string;
  /** Aborted when the caller went away: the compose stops (ClientGoneError) and its temp file is removed. */
  signal?: AbortSignal;
}

/** Parts stat-ed at once when checking they are all here. */
const STAT_BATCH = 64;
/**
 * Writes the concatenation of `parts` (keys on this node, in order) as blob
 * `key`. Throws MissingPartsError, before writing anything, when any part is
 * absent, or when one is gone while it is read (the write is then
 * discarded); ComposedSha256MismatchError when the result does not have
 * `expectedSha256`; what store.put throws otherwise.
 */
export async function composeBlob(
  deps: ComposeDeps,
  key: string,
  parts: string[],
  opts: ComposeOptions = {},
): Promise<BlobInfo> {
  const missing = await absentParts(deps.store, parts);
  if (missing.length > 0) throw new MissingPartsError(missing);
  const source = new PartsReader(deps, parts);
  const blockDigests = await reusableDigests(deps.store, parts);
  // In byte mode, so backpressure counts bytes: one 1 MiB block fills it, never sixteen.
  const body = Readable.from(source.chunks(), { objectMode: false, highWaterMark: 64 * 1024 });
  // The signal's reason may be a string (@hono/node-server's): fail with a typed error instead.
  const abort = () => body.destroy(new ClientGoneError());
  if (opts.signal?.aborted) throw new ClientGoneError();
  opts.signal?.addEventListener('abort', abort, { once: true });
  try {
    return await deps.store.put(key, body, { expectedSha256: opts.expectedSha256, blockDigests });
  } catch (err) {
    if (source.failed !== undefined) throw new MissingPartsError([source.failed]);
    if (err instanceof ChecksumMismatchError && opts.expectedSha256)
      throw new ComposedSha256MismatchError(opts.expectedSha256, err);
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', abort);
  }
}

/**
 * The composed blob's block digests, taken from its parts' when every part
 * but the last ends on a block boundary (a resumable upload's chunks of whole
 * MiBs do) and each has its digests; undefined otherwise (they are computed).
 */
async function reusableDigests(store: BlobStore, parts: string[]): Promise<Buffer[] | undefined> {
  const digests: Buffer[] = [];
  for (const [i, part] of parts.entries()) {
    const info = await store.stat(part);
    if (!info || (i < parts.length - 1 && info.size % BLOCK_SIZE !== 0)) return undefined;
    const own = await store.blockDigests(part);
    if (!own) return undefined;
    digests.push(...own);
  }
  return digests;
}

/** The parts (each once, in order) this node does not have on disk. */
async function absentParts(store: BlobStore, parts: string[]): Promise<string[]> {
  const unique = [...new Set(parts)];
  const missing: string[] = [];
  for (let i = 0; i < unique.length; i += STAT_BATCH) {
    const batch = unique.slice(i, i + STAT_BATCH);
    const found = await Promise.all(batch.map((part) => store.statOnDisk(part)));
    batch.forEach((part, j) => found[j] || missing.push(part));
  }
  return missing;
}

/**
 * The parts' bytes as stored, one part after the other; remembers the part
 * that let it down (gone since the check). They are not verified here: each
 * was checked against the gateway's sha256 when it was stored, and the
 * composed blob's sha256 is compared across the nodes that composed it, so a
 * part that rotted since makes this node's result the odd one out (it is then
 * replaced by a copy of the others').
 */
class PartsReader {
  /** The part gone while composing. */
  failed: string | undefined;

  constructor(
    private readonly deps: ComposeDeps,
    private readonly parts: string[],
  ) {}

  async *chunks(): AsyncGenerator<Buffer> {
    for (const part of this.parts) {
      const read = await this.deps.store.readRaw(part);
      if (!read) {
        this.failed ??= part; // deleted, or its file removed, since the check
        this.deps.log.warn({ key: part }, 'compose: a part vanished while composing');
        throw new Error(`part ${part} is gone`);
      }
      // Leaving this loop early (the write failed) destroys the part's stream and closes its file.
      let bytes = 0;
      for await (const chunk of read.stream) {
        bytes += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (bytes !== read.info.size) {
        this.failed ??= part;
        throw new Error(`part ${part} is ${bytes} bytes on disk, not ${read.info.size}`);
      }
    }
  }
}

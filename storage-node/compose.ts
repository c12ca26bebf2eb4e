/**
 * Composing a blob from parts already on this node (POST /blobs/:key/compose):
 * a resumable upload stores each request's bytes as a part, replicated like
 * any blob, and once it completes each node concatenates its own copies.
 *
 * The parts are read exactly as a GET reads them (store.get: every byte
 * verified against its checksums before it is handed on, a corrupt part
 * quarantined) and streamed, one after the other, into store.put: the same
 * durable write as a PUT, so the result cannot be told from a blob PUT whole.
 * Nothing is held beyond one read chunk (1 MiB), or a small part read whole.
 * The parts are left in place: the caller deletes them once every replica has
 * composed.
 */
import { Readable } from 'node:stream';
import {
  ChecksumMismatchError,
  ClientGoneError,
  CorruptBlobError,
  TroveError,
} from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { MissingPartsAnswer } from '../shared/node-protocol.js';
import type { BlobInfo, BlobStore } from './blob-store.js';
import { CorruptSumsError } from './block-sums.js';

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
 * Tries of a compose that met a part's damaged block sums mid-read: the store
 * drops the sidecar, so the next read of that part verifies its whole sha256.
 * The part itself is fine; the bytes written so far are discarded.
 */
const ATTEMPTS = 3;

/**
 * Writes the concatenation of `parts` (keys on this node, in order) as blob
 * `key`. Throws MissingPartsError, before writing anything, when any part is
 * absent, or when one turns out corrupt or gone while it is read (the write is
 * then discarded); ComposedSha256MismatchError when the result does not have
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
  for (let attempt = 1; ; attempt++) {
    try {
      return await composeOnce(deps, key, parts, opts);
    } catch (err) {
      if (!(err instanceof CorruptSumsError) || attempt === ATTEMPTS) throw err;
      deps.log.warn({ key, attempt, err: err.message }, 'compose: a part had damaged block sums');
    }
  }
}

async function composeOnce(
  deps: ComposeDeps,
  key: string,
  parts: string[],
  opts: ComposeOptions,
): Promise<BlobInfo> {
  const source = new PartsReader(deps, parts);
  // In byte mode, so backpressure counts bytes: one 1 MiB block fills it, never sixteen.
  const body = Readable.from(source.chunks(), { objectMode: false, highWaterMark: 64 * 1024 });
  // The signal's reason may be a string (@hono/node-server's): fail with a typed error instead.
  const abort = () => body.destroy(new ClientGoneError());
  if (opts.signal?.aborted) throw new ClientGoneError();
  opts.signal?.addEventListener('abort', abort, { once: true });
  try {
    return await deps.store.put(key, body, { expectedSha256: opts.expectedSha256 });
  } catch (err) {
    // A part's own checksum failure is a missing part, not a mismatch of the result.
    if (source.failed !== undefined) throw new MissingPartsError([source.failed]);
    if (err instanceof ChecksumMismatchError && opts.expectedSha256)
      throw new ComposedSha256MismatchError(opts.expectedSha256, err);
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', abort);
  }
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

/** The parts' verified bytes, one part after the other; remembers the part that let it down. */
class PartsReader {
  /** The part found corrupt (and quarantined) or gone while composing. */
  failed: string | undefined;

  constructor(
    private readonly deps: ComposeDeps,
    private readonly parts: string[],
  ) {}

  async *chunks(): AsyncGenerator<Buffer> {
    for (const part of this.parts) {
      const read = await this.deps.store.get(part).catch((err: unknown) => {
        // A small part, or the first block of a larger one, failed: the store quarantined it.
        if (err instanceof CorruptBlobError) this.fail(part, err);
        throw err;
      });
      if (!read) {
        this.fail(part, undefined); // deleted, or its file removed, since the check
        throw new Error(`part ${part} is gone`);
      }
      if (read.data) {
        yield read.data;
        continue;
      }
      try {
        // Leaving this loop early (the write failed) destroys the part's stream and closes its file.
        for await (const chunk of read.stream) yield chunk as Buffer;
      } catch (err) {
        // A later block failed its check: the store quarantines the part as it would for a GET.
        if (err instanceof ChecksumMismatchError) this.fail(part, err);
        throw err;
      }
    }
  }

  private fail(part: string, err: Error | undefined): void {
    this.failed ??= part;
    if (err) this.deps.log.error({ key: part, err: err.message }, 'corrupt blob quarantined');
    else this.deps.log.warn({ key: part }, 'compose: a part vanished while composing');
  }
}

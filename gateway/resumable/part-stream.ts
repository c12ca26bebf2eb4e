/**
 * A part's bytes streamed down the chain of its file's nodes (so that
 * composing is local to each of them): the way in shared by tus PATCHes
 * (part-writer.ts: into the upload's staged file, at the part's offset) and
 * S3 UploadPart (gateway/s3/s3-multipart.ts: a blob of its own).
 * The caller records the part (beginPart) before, and marks it stored or
 * discards it after.
 */
import { PassThrough, type Readable, type Transform } from 'node:stream';
import type { NodeAddress } from '../../shared/config.js';
import { UnavailableError } from '../../shared/errors.js';
import { pipeChain, type HashCounter } from '../../shared/streams.js';
import type { ResumableDeps } from './resumable-deps.js';

export interface PartStream {
  /** The blob key (partKey), or the staged upload's (stagingKey) with `offset`. */
  key: string;
  /** Where the part goes in the staged upload `key`; absent for a blob of its own. */
  offset?: number;
  chain: NodeAddress[];
  body: Readable;
  /** Checks run on the bytes before they are hashed (a sniffer, a size limit). */
  before: Transform[];
  /** Hashes and counts what reaches the nodes. */
  hasher: HashCounter;
}

/**
 * Streams the part; resolves with the nodes that stored exactly the bytes
 * that passed. A failure of the stream itself (413, 415, the client gone)
 * is thrown in preference to the write's, which it explains.
 */
export async function streamPart(deps: ResumableDeps, part: PartStream): Promise<string[]> {
  const { body, hasher } = part;
  const forward = new PassThrough();
  // Failures reach the write through the body a node reads; none may crash the gateway meanwhile.
  forward.on('error', () => {});
  const stages = [...part.before, hasher, forward];
  let streamError: Error | undefined;
  // A stage that fails (413, 415) ends the write at once, whether or not a node reads yet.
  const stop = new AbortController();
  for (const stage of [body, ...stages])
    stage.once('error', (err: Error) => {
      streamError ??= err;
      stop.abort(err);
    });
  const streamed = pipeChain(...stages);
  streamed.catch(() => {});
  // Piped, not part of the chain: a failure here must reach the caller as this function's
  // rejection (after the part's state is settled), not as its body's error first.
  body.once('error', (err) => stages[0]!.destroy(err));
  body.pipe(stages[0]!);
  try {
    const outcomes = await deps.replicator.write(part.key, part.chain, forward, {
      signal: stop.signal,
      offset: part.offset,
    });
    await streamed;
    const sha256 = hasher.digest();
    return outcomes
      .filter((o) => o.ok && o.sha256 === sha256 && o.size === hasher.bytes)
      .map((o) => o.node);
  } catch (err) {
    body.unpipe(stages[0]!);
    forward.destroy();
    throw streamError ?? err;
  }
}

/** 503 unless a write quorum stored the part. */
export function assertPartQuorum(deps: ResumableDeps, stored: string[], chain: NodeAddress[]) {
  if (stored.length >= deps.replication.writeQuorum) return;
  throw new UnavailableError(
    `only ${stored.length} of ${chain.length} storage nodes stored this part; ${deps.replication.writeQuorum} are needed`,
    'WRITE_QUORUM_FAILED',
  );
}

/** Removes a part that will not count (its blobs, then its row); a node that cannot be reached leaves it to the sweep. */
export async function discardPart(deps: ResumableDeps, key: string): Promise<void> {
  const unreachable = await deps.replicator.deleteFrom(key);
  if (unreachable.length === 0) await deps.store.forgetPart(key);
}

/**
 * One PATCH's bytes → one part: a blob of its own, streamed down the chain
 * of the file's nodes (so that composing is local to each of them), recorded
 * in the metadata store before the first byte leaves (a crash mid-write
 * leaves nothing untracked) and marked stored, moving the upload's offset,
 * once a write quorum has it with the sha256 the gateway computed.
 *
 * A body that ends early (the client's connection dropped) is still a part:
 * tus keeps what was received, and the client resumes after it. Unless it
 * carried an Upload-Checksum, which only the whole body can match.
 */
import { PassThrough, type Readable } from 'node:stream';
import { TroveError, UnavailableError } from '../../shared/errors.js';
import { HashCounter, pipeChain } from '../../shared/streams.js';
import { partKey } from '../../shared/resumable-parts.js';
import type { ResumableUpload } from '../../shared/metadata-store.js';
import { TypeSniffer } from '../upload/content-type.js';
import { ChecksumCheck } from './upload-checksum.js';
import type { TusRequest } from './tus-request.js';
import type { ResumableDeps } from './resumable-deps.js';

export interface WrittenPart {
  /** Bytes stored (0: nothing was, the offset stays). */
  bytes: number;
  /** Set when these were the file's first bytes. */
  contentType?: string;
}

/** 409: the upload's offset moved while this part was written (another request got there first). */
export class OffsetMovedError extends TroveError {
  constructor() {
    super(
      'UPLOAD_OFFSET_MISMATCH',
      409,
      'the upload moved on while this request was written; HEAD it and resume',
    );
  }
}

export async function writePart(
  deps: ResumableDeps,
  upload: ResumableUpload,
  offset: number,
  body: Readable,
  request: TusRequest,
): Promise<WrittenPart> {
  const chain = deps.replicator.chainFor(upload.fileId);
  const key = partKey(upload.fileId, offset);
  await deps.store.beginPart({
    uploadId: upload.id,
    key,
    offset,
    nodes: chain.map((n) => n.id),
    createdAt: Date.now(),
  });
  const first = offset === 0 && upload.contentType === null;
  const sniffer = first ? new TypeSniffer(deps.uploads.allowedTypes, upload.name) : undefined;
  const hasher = new HashCounter();
  const checksum = request.checksum && new ChecksumCheck(request.checksum);
  if (checksum) hasher.on('data', (chunk: Buffer) => checksum.update(chunk));
  const forward = new PassThrough();
  // Failures reach the write through the body a node reads; none may crash the gateway meanwhile.
  forward.on('error', () => {});
  const stages = sniffer ? [sniffer, hasher, forward] : [hasher, forward];
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
  // Piped, not part of the chain: a failure here must reach @tus/server as this function's
  // rejection (after the upload's state is settled), not as its body's error first.
  body.once('error', (err) => stages[0]!.destroy(err));
  body.pipe(stages[0]!);
  let stored: string[] = [];
  try {
    const outcomes = await deps.replicator.write(key, chain, forward, { signal: stop.signal });
    await streamed;
    const sha256 = hasher.digest();
    stored = outcomes
      .filter((o) => o.ok && o.sha256 === sha256 && o.size === hasher.bytes)
      .map((o) => o.node);
    if (hasher.bytes === 0) return await discard(deps, key, { bytes: 0 });
    const cut = request.contentLength !== undefined && hasher.bytes < request.contentLength;
    // A body cut short cannot match its checksum: nothing kept, the client sends it again.
    if (checksum && cut) return await discard(deps, key, { bytes: 0 });
    checksum?.verify();
    if (stored.length < deps.replication.writeQuorum) {
      throw new UnavailableError(
        `only ${stored.length} of ${chain.length} storage nodes stored this part; ${deps.replication.writeQuorum} are needed`,
        'WRITE_QUORUM_FAILED',
      );
    }
    const contentType = sniffer ? await sniffer.type : undefined;
    const moved = await deps.store.storePart({
      uploadId: upload.id,
      key,
      offset,
      size: hasher.bytes,
      sha256,
      nodes: stored,
      contentType,
    });
    if (!moved) throw new OffsetMovedError();
    return { bytes: hasher.bytes, contentType };
  } catch (err) {
    // The stream's own failure (413, 415, the client gone) explains more than the write's.
    const failure = streamError ?? err;
    body.unpipe(stages[0]!);
    forward.destroy();
    await discard(deps, key, { bytes: 0 });
    if (isEmptyFirstBody(failure, hasher)) return { bytes: 0 };
    throw failure;
  }
}

/** An empty PATCH at offset 0 is not an empty file: there is just nothing to store yet. */
function isEmptyFirstBody(err: unknown, hasher: HashCounter): boolean {
  return (err as TroveError)?.code === 'EMPTY_FILE' && hasher.bytes === 0;
}

/** Removes a part that will not count (its blobs, then its row); a node that cannot be reached leaves it to the sweep. */
async function discard(
  deps: ResumableDeps,
  key: string,
  result: WrittenPart,
): Promise<WrittenPart> {
  const unreachable = await deps.replicator.deleteFrom(key);
  if (unreachable.length === 0) await deps.store.forgetPart(key);
  return result;
}

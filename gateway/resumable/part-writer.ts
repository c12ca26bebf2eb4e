/**
 * One PATCH's bytes → one part: written at its offset into the upload's
 * staged file on each of the file's nodes (streamed down their chain; see
 * storage-node/staging-store.ts), recorded in the metadata store before the
 * first byte leaves and marked stored, moving the upload's offset, once a
 * write quorum has it with the sha256 the gateway computed. A part that does
 * not count is cut off the staged files at once (and would be by the next
 * part at the same offset, or by the commit, if a node missed that).
 *
 * A body that ends early (the client's connection dropped) is still a part:
 * tus keeps what was received, and the client resumes after it. Unless it
 * carried an Upload-Checksum, which only the whole body can match.
 */
import type { Readable } from 'node:stream';
import { TroveError } from '../../shared/errors.js';
import { HashCounter } from '../../shared/streams.js';
import { partKey, stagingKey } from '../../shared/resumable-parts.js';
import type { NodeAddress } from '../../shared/config.js';
import type { ResumableUpload } from '../../shared/metadata-store.js';
import { TypeSniffer } from '../upload/content-type.js';
import { ChecksumCheck } from './upload-checksum.js';
import { assertPartQuorum, streamPart } from './part-stream.js';
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
  const staged = stagingKey(upload);
  const discard = async (result: WrittenPart, cut = true): Promise<WrittenPart> => {
    if (cut) await cutStaged(deps, chain, staged, offset);
    await deps.store.forgetPart(key);
    return result;
  };
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
  try {
    const before = sniffer ? [sniffer] : [];
    const stored = await streamPart(deps, {
      key: staged,
      offset,
      chain,
      body,
      before,
      hasher,
    });
    if (hasher.bytes === 0) return await discard({ bytes: 0 });
    const cut = request.contentLength !== undefined && hasher.bytes < request.contentLength;
    // A body cut short cannot match its checksum: nothing kept, the client sends it again.
    if (checksum && cut) return await discard({ bytes: 0 });
    checksum?.verify();
    assertPartQuorum(deps, stored, chain);
    const contentType = sniffer ? await sniffer.type : undefined;
    const moved = await deps.store.storePart({
      uploadId: upload.id,
      key,
      offset,
      size: hasher.bytes,
      sha256: hasher.digest(),
      nodes: stored,
      contentType,
    });
    if (!moved) throw new OffsetMovedError();
    return { bytes: hasher.bytes, contentType };
  } catch (err) {
    // Another request's part counted at this offset (two PATCHes at once, past the lock): a cut
    // would take its bytes too. The commit checks which request's bytes the nodes hold.
    await discard({ bytes: 0 }, !(err instanceof OffsetMovedError));
    if (isEmptyFirstBody(err, hasher)) return { bytes: 0 };
    throw err;
  }
}

/** An empty PATCH at offset 0 is not an empty file: there is just nothing to store yet. */
function isEmptyFirstBody(err: unknown, hasher: HashCounter): boolean {
  return (err as TroveError)?.code === 'EMPTY_FILE' && hasher.bytes === 0;
}

/** Cuts the staged files back to `offset` on every node of `chain` that can be reached. */
async function cutStaged(
  deps: ResumableDeps,
  chain: NodeAddress[],
  key: string,
  offset: number,
): Promise<void> {
  await Promise.all(
    chain.map((node) =>
      deps.client
        .cutStaged(node, key, offset)
        .catch((err: Error) =>
          deps.log.warn(
            { key, node: node.id, err: err.message },
            'staged part left to be cut later',
          ),
        ),
    ),
  );
}

/**
 * CompleteMultipartUpload: the parts the client lists are checked (they
 * exist, with the ETags it names, all but the last ≥ 5 MiB), the object's
 * type is sniffed from the first bytes of the first of them, and each node
 * composes them, in the listed order, into the file's blob
 * (gateway/resumable/completion.ts, as a finished tus upload). The file is
 * committed as any upload, the key is pointed at it as PutObject points it,
 * and every part of the upload, listed or not, is removed.
 *
 * The type is sniffed here rather than at UploadPart: only now is it known
 * which part comes first (a client may send part 1 again with other bytes,
 * or leave it out of the list), and a Range read of 4 KiB costs nothing next
 * to the compose.
 *
 * A Complete sent again after it succeeded (a client that lost the answer)
 * is answered the same while the key still points at the upload's file.
 *
 * A Complete that takes longer than S3_COMPLETE_KEEPALIVE_MS (a large
 * object's compose) answers 200 at once and is kept alive with spaces until
 * its document, or its <Error>, follows (kept-alive-answer.ts).
 */
import { ERRORS } from '@tus/utils';
import { TroveError, UnavailableError } from '../../shared/errors.js';
import type { ResumableUpload, UploadPart } from '../../shared/metadata-store.js';
import { fileJson, fileLinks } from '../files/file-view.js';
import { assertNotAborted, composeAndCommit, finishUpload } from '../resumable/completion.js';
import { SNIFF_BYTES, TypeSniffer } from '../upload/content-type.js';
import { etagMd5, multipartEtag } from './etag.js';
import { answerKeptAlive, type XmlAnswer } from './kept-alive-answer.js';
import { findUpload, noSuchUpload, userMetadataOfUpload } from './multipart-uploads.js';
import { readSmallBody } from './s3-body.js';
import { ownedBucket, XML } from './s3-buckets.js';
import type { ObjectCall, S3Deps } from './s3-context.js';
import { S3Error } from './s3-errors.js';
import { pointKeyAt, shareBase, troveHeaders } from './s3-put.js';
import {
  COMPLETE_MULTIPART_BODY_LIMIT,
  parseCompleteMultipartUpload,
  type CompletedPart,
} from './s3-xml-bodies.js';
import { completeMultipartUploadXml } from './s3-xml.js';

/** S3's least size of a part that is not the last. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

export async function completeMultipartUpload(deps: S3Deps, call: ObjectCall) {
  await ownedBucket(deps, call);
  const body = await readSmallBody(call, COMPLETE_MULTIPART_BODY_LIMIT);
  // Only for the headers of an early 200: complete() reads it again under the lock.
  const upload = await findUpload(deps, call);
  const work = underUploadLock(deps, call.request.uploadId ?? '', () => complete(deps, call, body));
  // A large object's compose can outlast a client's read timeout: a slow one is kept alive.
  return answerKeptAlive(call.c, work, {
    afterMs: deps.s3.s3CompleteKeepaliveMs,
    earlyHeaders: upload
      ? troveHeaders({
          file: { id: upload.fileId },
          answer: fileLinks(shareBase(call.c, deps), upload.fileId),
        })
      : {},
    log: deps.log,
  });
}

/**
 * Runs `fn` holding the upload's lock (the one tus takes, shared by every
 * gateway): of two Completes of one upload (a client that retried), the
 * second waits, then answers as a Complete sent again.
 */
async function underUploadLock<T>(deps: S3Deps, uploadId: string, fn: () => Promise<T>) {
  const lock = deps.tusLocker?.newLock(uploadId);
  if (lock === undefined) return fn();
  try {
    // Asked to let go by a waiting request: a compose cannot stop half-way, it finishes first.
    await lock.lock(new AbortController().signal, () => {});
  } catch (err) {
    if (err !== ERRORS.ERR_LOCK_TIMEOUT) throw err;
    throw new S3Error('SlowDown', 'Another request is completing this upload; try again.');
  }
  try {
    return await fn();
  } finally {
    await lock.unlock();
  }
}

async function complete(deps: S3Deps, call: ObjectCall, body: Buffer): Promise<XmlAnswer> {
  const upload = await findUpload(deps, call);
  if (upload?.state === 'done') return completedBefore(deps, call, upload);
  if (upload?.state !== 'uploading' || upload.expiresAt <= Date.now())
    throw noSuchUpload(call.request.uploadId ?? '');
  const listed = parseCompleteMultipartUpload(body);
  const parts = chosenParts(listed, await deps.store.s3.listParts(upload.id));
  const size = parts.reduce((sum, p) => sum + p.size!, 0);
  if (size > deps.uploads.maxUploadBytes)
    throw new S3Error(
      'EntityTooLarge',
      `the object would be larger than the upload limit of ${deps.uploads.maxUploadBytes} bytes`,
    );
  const existing = await deps.store.getFile(upload.fileId);
  // Committed already: an earlier Complete stopped before pointing the key at it.
  if (existing?.state !== 'committed') {
    assertNotAborted(existing);
    const contentType = await sniffPart(deps, parts[0]!, upload.name);
    await composeAndCommit(deps, { ...upload, contentType }, parts, existing !== undefined);
  }
  const file = (await deps.store.getFile(upload.fileId))!;
  const etag = multipartEtag(parts.map((p) => p.md5!));
  await pointKeyAt(deps, call, file, {
    etag,
    userMetadata: userMetadataOfUpload(upload),
    md5: null,
  });
  await finishUpload(deps, upload);
  return answer(deps, call, upload.fileId, etag);
}

/** The stored parts the list names, in its order; S3's refusals for a list that does not fit them. */
function chosenParts(listed: CompletedPart[], stored: UploadPart[]): UploadPart[] {
  const byNumber = new Map(stored.map((p) => [p.partNumber, p]));
  const parts = listed.map(({ partNumber, etag }) => {
    const part = byNumber.get(partNumber);
    if (part === undefined || etagMd5(etag) !== part.md5)
      throw new S3Error(
        'InvalidPart',
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
        { PartNumber: String(partNumber), ETag: etag },
      );
    return part;
  });
  parts.slice(0, -1).forEach((part) => {
    if (part.size! < MIN_PART_BYTES)
      throw new S3Error(
        'EntityTooSmall',
        'Your proposed upload is smaller than the minimum allowed object size.',
        {
          ProposedSize: String(part.size),
          MinSizeAllowed: String(MIN_PART_BYTES),
          PartNumber: String(part.partNumber),
        },
      );
  });
  return parts;
}

/**
 * The object's type, from the first bytes of `part` (a Range read from a
 * node that stored it), held to ALLOWED_TYPES as every upload is (415).
 */
async function sniffPart(deps: S3Deps, part: UploadPart, name: string): Promise<string> {
  const nodes = deps.layout.nodes();
  for (const id of part.nodes) {
    const node = nodes.find((n) => n.id === id);
    if (!node) continue;
    try {
      const res = await deps.client.getBlob(node, part.key, {
        range: `bytes=0-${SNIFF_BYTES - 1}`,
      });
      if (res.statusCode !== 200 && res.statusCode !== 206) {
        res.body.destroy();
        continue;
      }
      const sniffer = new TypeSniffer(deps.uploads.allowedTypes, name);
      // Its refusal comes through `type`; unheard, the stream's 'error' would end the process.
      sniffer.on('error', () => {});
      res.body.once('error', (err) => sniffer.destroy(err));
      res.body.pipe(sniffer).resume();
      // A node that answers the whole blob is cut off once the type is known.
      return await sniffer.type.finally(() => res.body.destroy());
    } catch (err) {
      // The bytes' own refusal (415, an empty file) holds on any node.
      if (err instanceof TroveError && err.status < 500) throw err;
      deps.log.warn({ part: part.key, node: id, err: (err as Error).message }, 'part sniff failed');
    }
  }
  throw new UnavailableError(`no storage node could read the first part ${part.key}`);
}

/** A Complete sent again: the same answer while the key still names the upload's file. */
async function completedBefore(deps: S3Deps, call: ObjectCall, upload: ResumableUpload) {
  const object = await deps.store.s3.getObject(call.bucket, call.key, Date.now());
  if (object?.fileId !== upload.fileId) throw noSuchUpload(upload.id);
  return answer(deps, call, upload.fileId, object.etag);
}

async function answer(
  deps: S3Deps,
  call: ObjectCall,
  fileId: string,
  etag: string,
): Promise<XmlAnswer> {
  const { c } = call;
  const file = await deps.store.getFile(fileId);
  if (!file) throw noSuchUpload(call.request.uploadId ?? '');
  const xml = completeMultipartUploadXml({
    location: `${new URL(c.req.url).origin}/${call.bucket}/${encodeURIComponent(call.key).replace(/%2F/g, '/')}`,
    bucket: call.bucket,
    key: call.key,
    etag,
  });
  const links = fileJson(file, [], shareBase(c, deps));
  return { xml, headers: { ...XML, etag, ...troveHeaders({ file, answer: links }) } };
}

/**
 * The end of a resumable upload: its bytes, stored on the file's nodes, are
 * made the file's blob by each node, then the file is committed like any
 * upload and what the parts left is removed.
 *   - tus: each node renames its staged file (`POST /staging/:key/commit`),
 *     once it checked it holds exactly the upload's parts. A node that does
 *     not (it was away for some) is left to repair, or sent a copy of the
 *     blob when fewer than a write quorum have it.
 *   - S3 multipart: each node composes the part blobs (`POST
 *     /blobs/:key/compose`: a local read of its parts and one durable write).
 *     A node lacking a part first gets a copy from a node that has it.
 *
 * It runs under the upload's tus lock, from the PATCH that stored the last
 * byte, or from the next HEAD or PATCH when that gateway died first: every
 * step can be done again, so a completion cut short is finished by the next
 * request, on any gateway.
 */
import { createHmac } from 'node:crypto';
import type { NodeAddress } from '../../shared/config.js';
import { UnavailableError } from '../../shared/errors.js';
import { blobKey } from '../../shared/keys.js';
import type { CommitFile, ResumableUpload, UploadPart } from '../../shared/metadata-store.js';
import type { StagedPart } from '../../shared/node-protocol.js';
import { removeParts, stagingKey } from '../../shared/resumable-parts.js';
import { discardUpload, hashToken, type IngestedFile } from '../upload/ingest.js';
import { commitIngested } from '../upload/upload.js';
import type { ResumableDeps } from './resumable-deps.js';

/**
 * A resumable upload's delete token: derived from the upload's id with a key
 * only the gateways have, so every gateway can hand it out at the end (to
 * whoever holds the upload's URL, a secret of the uploader's) and none is
 * stored in the clear.
 */
export function resumableDeleteToken(key: Buffer, uploadId: string): string {
  return createHmac('sha256', key).update(`delete-token:${uploadId}`).digest('base64url');
}

/** Composes and commits `upload`, whose every byte is stored; a no-op when it already was. */
export async function completeUpload(deps: ResumableDeps, upload: ResumableUpload): Promise<void> {
  const existing = await deps.store.getFile(upload.fileId);
  if (existing?.state !== 'committed') {
    assertNotAborted(existing);
    const parts = (await deps.store.partsOf(upload.id)).filter((p) => p.stored);
    assertContiguous(upload, parts);
    const staged = parts.map((p) => ({ offset: p.offset, size: p.size!, sha256: p.sha256! }));
    await composeAndCommit(deps, upload as ComposableUpload, parts, existing !== undefined, {
      on: (node) => commitStagedOn(deps, node, upload, staged),
      // The nodes that committed hold the only copy of the bytes now: a retry commits from them.
      discardOnFailure: false,
    });
  }
  await finishUpload(deps, upload);
}

/** A file a previous attempt failed to compose is still being removed: this attempt must wait. */
export function assertNotAborted(existing: { state: string } | undefined): void {
  if (existing?.state === 'aborted')
    throw new UnavailableError(
      'a previous attempt to finish this upload is being cleaned up; try again',
      'UPLOAD_FINISHING',
    );
}

/** Ends a committed upload; its parts (every one, listed or not) are garbage now. */
export async function finishUpload(deps: ResumableDeps, upload: ResumableUpload): Promise<void> {
  await deps.store.endResumable(upload.id, 'done');
  // After the answer: the file is committed, its parts are garbage (the sweep removes what this misses).
  void removeParts(partDeps(deps), upload).catch((err: Error) =>
    deps.log.warn({ upload: upload.id, err: err.message }, 'parts left to the sweep'),
  );
}

/** An upload whose type is known: decided from its first bytes. */
export type ComposableUpload = ResumableUpload & { contentType: string };

/** How each node makes the upload's blob: by default, composing `parts` (S3 multipart). */
export interface Assembly {
  /** The blob made on `node`; undefined when it could not. */
  on(node: NodeAddress): Promise<Composed | undefined>;
  /** Whether a failure (under a write quorum) deletes what nodes made. */
  discardOnFailure: boolean;
}

/**
 * Makes the upload's file on each of its nodes (`assembly`, by default
 * composing `parts` in this order) and commits it. `begun`: the file's row
 * exists from an attempt that did not finish.
 */
export async function composeAndCommit(
  deps: ResumableDeps,
  upload: ComposableUpload,
  parts: UploadPart[],
  begun: boolean,
  assembly: Assembly = {
    on: (node) => composeOn(deps, node, upload, parts),
    discardOnFailure: true,
  },
): Promise<{ file: IngestedFile; commit: CommitFile }> {
  const size = parts.reduce((sum, p) => sum + p.size!, 0);
  const deleteToken = resumableDeleteToken(deps.uploadLinkKey, upload.id);
  const createdAt = Date.now();
  if (!begun)
    await deps.store.beginUpload({
      id: upload.fileId,
      name: upload.name,
      contentType: upload.contentType,
      maxDownloads: upload.maxDownloads,
      createdAt,
      expiresAt: createdAt + upload.ttlSeconds * 1000,
      deleteTokenHash: hashToken(deleteToken),
      owner: deps.server.gatewayId,
      uploadLink: upload.uploadLink ?? undefined,
    });
  const chain = deps.replicator.chainFor(upload.fileId);
  const results = await Promise.all(chain.map((node) => assembly.on(node)));
  const composed = results.filter((r) => r !== undefined);
  // The sha256 most nodes agree on; a node that disagrees lost bytes somewhere and is not counted.
  const sha256 = mostCommon(composed.map((r) => r.sha256));
  const good = composed.filter((r) => r.sha256 === sha256 && r.size === size);
  if (good.length > 0 && good.length < deps.replication.writeQuorum)
    good.push(...(await copiesForQuorum(deps, upload, chain, good)));
  if (good.length < deps.replication.writeQuorum) {
    if (assembly.discardOnFailure) await discardUpload(deps, upload.fileId, chain);
    throw new UnavailableError(
      `only ${good.length} of ${chain.length} storage nodes could put the upload together; ${deps.replication.writeQuorum} are needed. Try again`,
      'WRITE_QUORUM_FAILED',
    );
  }
  const stored = new Set(good.map((r) => r.node));
  const bad = chain.filter((n) => !stored.has(n.id) && composed.some((r) => r.node === n.id));
  if (bad.length > 0) await deps.replicator.deleteFrom(blobKey(upload.fileId), bad);
  const file: IngestedFile = {
    id: upload.fileId,
    name: upload.name,
    size,
    contentType: upload.contentType,
    sha256: sha256!,
    deleteToken,
    createdAt,
    replicas: deps.replicator.placementOutcome(upload.fileId, chain, stored),
  };
  const [commit] = await commitIngested(deps, [file], upload);
  return { file, commit: commit! };
}

/** The parts must cover [0, length) end to end; anything else is a bug, never a file. */
function assertContiguous(upload: ResumableUpload, parts: UploadPart[]): void {
  let next = 0;
  for (const p of parts) {
    if (p.offset !== next)
      throw new Error(`upload ${upload.id}: part at ${p.offset}, expected ${next}`);
    next += p.size!;
  }
  if (upload.length === null || next !== upload.length)
    throw new Error(`upload ${upload.id}: parts end at ${next}, length ${upload.length}`);
}

type Composed = { node: string; size: number; sha256: string };

/** Commits the upload's staged file on `node`; undefined when the node does not hold it whole. */
async function commitStagedOn(
  deps: ResumableDeps,
  node: NodeAddress,
  upload: ResumableUpload,
  parts: StagedPart[],
): Promise<Composed | undefined> {
  try {
    const answer = await deps.client.commitStaged(
      node,
      stagingKey(upload),
      blobKey(upload.fileId),
      parts,
    );
    if (answer.ok) return { node: node.id, size: answer.size, sha256: answer.sha256 };
    deps.log.info(
      { upload: upload.id, node: node.id, have: answer.have, reason: answer.message },
      'a node does not hold the whole upload; it gets a copy',
    );
  } catch (err) {
    deps.log.warn(
      { upload: upload.id, node: node.id, err: (err as Error).message },
      'could not commit the upload on a node; it gets a copy',
    );
  }
  return undefined;
}

/**
 * Fewer than a write quorum made the blob (the others were away for some of
 * the parts): copies of a good node's blob to the others of the chain until
 * there are enough, or none is left to try. Returns those that took one.
 */
async function copiesForQuorum(
  deps: ResumableDeps,
  upload: ResumableUpload,
  chain: NodeAddress[],
  good: Composed[],
): Promise<Composed[]> {
  const [source] = good;
  const sourceNode = chain.find((n) => n.id === source!.node)!;
  const copied: Composed[] = [];
  for (const target of chain) {
    if (good.length + copied.length >= deps.replication.writeQuorum) break;
    if (good.some((g) => g.node === target.id)) continue;
    const ok = await copyBlob(deps, blobKey(upload.fileId), [sourceNode], target, source!).catch(
      () => false,
    );
    if (ok) copied.push({ ...source!, node: target.id });
  }
  return copied;
}

/** Composes the file's blob on `node`, first copying it the parts it lacks; undefined when it cannot. */
async function composeOn(
  deps: ResumableDeps,
  node: NodeAddress,
  upload: ResumableUpload,
  parts: UploadPart[],
): Promise<Composed | undefined> {
  const keys = parts.map((p) => p.key);
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      const answer = await deps.client.compose(node, blobKey(upload.fileId), keys);
      if (answer.ok) return { node: node.id, size: answer.size, sha256: answer.sha256 };
      if (attempt === 1) break;
      for (const key of answer.missing)
        await copyPart(
          deps,
          node,
          parts.find((p) => p.key === key)!,
        );
    }
  } catch (err) {
    deps.log.warn(
      { upload: upload.id, node: node.id, err: (err as Error).message },
      'could not compose the upload on a node; it gets a copy by repair',
    );
  }
  return undefined;
}

/** Copies one part to `target` from a node that stored it. */
async function copyPart(deps: ResumableDeps, target: NodeAddress, part: UploadPart): Promise<void> {
  const nodes = deps.layout.nodes();
  const sources = part.nodes.flatMap((id) => nodes.filter((n) => n.id === id));
  const copied = await copyBlob(deps, part.key, sources, target, {
    sha256: part.sha256!,
    size: part.size!,
  });
  if (!copied)
    throw new UnavailableError(`no node could give ${target.id} a copy of part ${part.key}`);
}

/**
 * Copies blob `key` to `target` from the first of `sources` that can give it
 * (node → gateway → node, streamed, checked against `expected`); false when
 * none could.
 */
async function copyBlob(
  deps: ResumableDeps,
  key: string,
  sources: NodeAddress[],
  target: NodeAddress,
  expected: { sha256: string; size: number },
): Promise<boolean> {
  for (const source of sources) {
    if (source.id === target.id) continue;
    try {
      const res = await deps.client.getBlob(source, key);
      if (res.statusCode !== 200) {
        res.body.destroy();
        continue;
      }
      const report = await deps.client.putBlob(target, key, res.body, {
        chain: [],
        hop: 0,
        expectedSha256: expected.sha256,
        contentLength: expected.size,
      });
      if (report.replicas[0]?.ok) return true;
    } catch (err) {
      deps.log.warn(
        { key, from: source.id, to: target.id, err: (err as Error).message },
        'copy failed',
      );
    }
  }
  return false;
}

function mostCommon(values: string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
}

export function partDeps(deps: ResumableDeps) {
  return {
    store: deps.store,
    client: deps.client,
    nodes: () => deps.layout.nodes(),
    log: deps.log,
  };
}

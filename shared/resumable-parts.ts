/**
 * What resumable uploads keep on the storage nodes, by key: a tus upload's
 * staged file, S3 multipart parts (a blob each); and their removal once an
 * upload completed, was terminated or expired. The gateway removes them as
 * soon as it can; the worker's sweep removes what a node that was down, or
 * a gateway that died, left behind.
 */
import { randomBytes } from 'node:crypto';
import type { NodeAddress } from './config.js';
import type { Logger } from './logger.js';
import type { MetadataStore, ResumableUpload, UploadPart } from './metadata-store.js';
import type { NodeClient } from './node-client.js';

/**
 * `<fileId>.part-<offset>-<nonce>`: the file's id first, so an operator's
 * `find` shows whose bytes they are; the nonce makes every attempt's key its
 * own, so a retried or concurrent request never overwrites a stored part.
 */
export function partKey(fileId: string, offset: number): string {
  return `${fileId}.part-${offset}-${randomBytes(4).toString('hex')}`;
}

const PART_KEY = /^[A-Za-z0-9_-]{22}\.part-\d+-[0-9a-f]{8}$/;

/**
 * `<fileId>.tus-<uploadId>`: the staged file a tus upload's parts are written
 * into on each node (storage-node/staging-store.ts), the file's id first as
 * for parts. The upload's id makes it findable from a node's listing.
 */
export function stagingKey(upload: Pick<ResumableUpload, 'id' | 'fileId'>): string {
  return `${upload.fileId}.tus-${upload.id}`;
}

const STAGING_KEY = /^[A-Za-z0-9_-]{22}\.tus-([A-Za-z0-9_-]{1,64})$/;

/** The upload id a staging key names; undefined for any other key. */
export function uploadIdOfStagingKey(key: string): string | undefined {
  return STAGING_KEY.exec(key)?.[1];
}

export function isPartKey(key: string): boolean {
  return PART_KEY.test(key);
}

export interface PartRemovalDeps {
  store: Pick<MetadataStore, 'partsOf' | 'forgetPart'>;
  client: Pick<NodeClient, 'deleteBlob' | 'deleteStaged'>;
  /** The nodes of the layout in force. */
  nodes: () => NodeAddress[];
  log: Logger;
}

/**
 * Removes what an upload left on the nodes and forgets its part rows: a tus
 * upload's staged file (`parts` unset), or S3 parts, each a blob of its own
 * (`parts`, default every part of the upload). From every node of the layout
 * (a part may have been copied to a node it was not sent to, for a compose;
 * removing what a node does not have is a no-op). Returns how many are still
 * owed (a node could not be reached): the next sweep retries.
 */
export async function removeParts(
  deps: PartRemovalDeps,
  upload: Pick<ResumableUpload, 'id' | 'fileId' | 's3'>,
  parts?: UploadPart[],
): Promise<number> {
  if (upload.s3 === null && !parts) return removeStaged(deps, upload);
  const nodes = deps.nodes();
  const all = parts ?? (await deps.store.partsOf(upload.id));
  let owed = 0;
  // A few parts at a time, each from every node at once: a 256 MiB upload has 32 of them.
  for (let i = 0; i < all.length; i += PARTS_AT_ONCE) {
    const batch = all.slice(i, i + PARTS_AT_ONCE);
    const left = await Promise.all(batch.map((part) => removePart(deps, upload, part, nodes)));
    owed += left.filter(Boolean).length;
  }
  return owed;
}

/**
 * A tus upload's bytes are one staged file per node: removed from every
 * node, then its part rows (which only record the ranges) are forgotten.
 * Returns 1 while a node could not be reached.
 */
async function removeStaged(
  deps: PartRemovalDeps,
  upload: Pick<ResumableUpload, 'id' | 'fileId'>,
): Promise<number> {
  const key = stagingKey(upload);
  const results = await Promise.allSettled(
    deps.nodes().map((n) => deps.client.deleteStaged(n, key)),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    deps.log.warn(
      { upload: upload.id, key, err: (failed.reason as Error).message },
      'could not remove a staged upload; the sweep retries',
    );
    return 1;
  }
  for (const part of await deps.store.partsOf(upload.id)) await deps.store.forgetPart(part.key);
  return 0;
}

const PARTS_AT_ONCE = 8;

/** Deletes one part everywhere and forgets it; true when a node could not be reached (still owed). */
async function removePart(
  deps: PartRemovalDeps,
  upload: Pick<ResumableUpload, 'id'>,
  part: UploadPart,
  nodes: NodeAddress[],
): Promise<boolean> {
  const results = await Promise.allSettled(nodes.map((n) => deps.client.deleteBlob(n, part.key)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) {
    await deps.store.forgetPart(part.key);
    return false;
  }
  deps.log.warn(
    { upload: upload.id, part: part.key, err: (failed.reason as Error).message },
    'could not remove an upload part; the sweep retries',
  );
  return true;
}

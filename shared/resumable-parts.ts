/**
 * The parts of resumable (tus) uploads on the storage nodes: their keys, and
 * their removal once an upload completed, was terminated or expired. The
 * gateway removes them as soon as it can; the worker's sweep removes what a
 * node that was down, or a gateway that died, left behind.
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

export function isPartKey(key: string): boolean {
  return PART_KEY.test(key);
}

export interface PartRemovalDeps {
  store: Pick<MetadataStore, 'partsOf' | 'forgetPart'>;
  client: Pick<NodeClient, 'deleteBlob'>;
  /** The nodes of the layout in force. */
  nodes: () => NodeAddress[];
  log: Logger;
}

/**
 * Deletes `parts` (default: every part of the upload) from every node of the
 * layout (a part may have been copied to a node it was not sent to, for a
 * compose; a delete of a blob a node does not have is a no-op), forgetting
 * each part once it is gone everywhere. Returns the parts still owed (a node
 * could not be reached): the next sweep retries.
 */
export async function removeParts(
  deps: PartRemovalDeps,
  upload: Pick<ResumableUpload, 'id'>,
  parts?: UploadPart[],
): Promise<number> {
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

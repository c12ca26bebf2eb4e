/**
 * The gateway's side of deletion: scheduling a file's deletion at its expiry
 * (a delayed `files.delete` job), and `DELETE /files/:id` with the upload's
 * delete token. The worker does the rest (grace, blobs, tombstone purge).
 *
 * A job that cannot be published (RabbitMQ down) is logged, not fatal: the
 * file row carries its expiry, and the worker's sweep finds what no message
 * announced within a minute.
 */
import type { Context } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import type { JobPublisher } from '../../shared/amqp.js';
import { ForbiddenError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import { findFile } from './file-rules.js';
import { hashToken } from '../upload/ingest.js';
import type { BlobCache } from '../download/blob-cache.js';

export interface DeletionDeps {
  store: MetadataStore;
  amqp: JobPublisher;
  /** A deleted file's bytes leave this gateway's cache at once (other gateways' age out). */
  blobCache: Pick<BlobCache, 'deleteFile'>;
  log: Logger;
}

/** How long a publish may wait for RabbitMQ before the sweep is left to do the job. */
const PUBLISH_TIMEOUT_MS = 2000;

export async function scheduleDeletion(deps: DeletionDeps, fileId: string, due: number) {
  if (!deps.amqp.connected) {
    // Do not make every upload wait while RabbitMQ is down; the sweep covers it.
    deps.log.warn({ id: fileId }, 'RabbitMQ is down; the sweep will delete the file');
    return;
  }
  try {
    await deps.amqp.publish(
      deps.amqp.names.fileDelete,
      { fileId, due },
      { due, timeoutMs: PUBLISH_TIMEOUT_MS },
    );
  } catch (err) {
    deps.log.warn(
      { id: fileId, err: (err as Error).message },
      'could not schedule deletion; the sweep will delete the file',
    );
  }
}

/** True when `token` is the one given at upload (compared as hashes, in constant time). */
export function tokenMatches(token: string | undefined, storedHash: string): boolean {
  if (!token) return false;
  const given = Buffer.from(hashToken(token), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}

/**
 * DELETE /files/:id: tombstone now (downloads answer 410 at once), blobs
 * after the worker's grace. Idempotent: deleting a deleted file is 204 again.
 */
export async function handleDelete(deps: DeletionDeps, c: Context) {
  const file = await findFile(deps.store, c.req.param('id'));
  const token = c.req.header('x-delete-token') ?? c.req.query('delete_token');
  if (!tokenMatches(token, file.deleteTokenHash)) {
    throw new ForbiddenError(
      token
        ? 'the delete token does not match this file'
        : 'send the delete_token from the upload answer in the X-Delete-Token header',
      token ? 'WRONG_DELETE_TOKEN' : 'DELETE_TOKEN_REQUIRED',
    );
  }
  await deleteNow(deps, file.id, 'its owner');
  return c.body(null, 204);
}

/**
 * Tombstones a committed file now and queues the removal of its blobs; `by`
 * is for the log. Idempotent (the owner's DELETE and the admin API's use it).
 */
export async function deleteNow(deps: DeletionDeps, fileId: string, by: string): Promise<void> {
  const now = Date.now();
  if (await deps.store.markDeleted(fileId, 'deleted', now)) {
    deps.log.info({ id: fileId, by }, `file deleted by ${by}`);
  }
  deps.blobCache.deleteFile(fileId);
  await scheduleDeletion(deps, fileId, now);
}

/**
 * The rules of a public file: which id leads to a file, where it stands
 * (active, expired, used up, deleted), how many downloads it has left, and
 * the refusals that follow (404 FILE_NOT_FOUND; 410 FILE_EXPIRED,
 * FILE_DELETED, DOWNLOAD_LIMIT_REACHED).
 *
 * `fileStatus` has an SQL twin: the listing status conditions (`STATUS_SQL`)
 * in shared/sqlite-metadata-store.ts, which the admin API filters by. A change
 * to one is a change to both.
 */
import { GoneError, NotFoundError } from '../../shared/errors.js';
import { isValidFileId } from '../../shared/keys.js';
import type { FileRecord, MetadataStore } from '../../shared/metadata-store.js';

export type FileStatus = 'active' | 'expired' | 'exhausted' | 'deleted';

/** What the rules read of a file. */
type FileLimits = Pick<FileRecord, 'maxDownloads' | 'downloadsUsed' | 'expiresAt' | 'deletedAt'>;

/** The committed file behind a public id; 404 for anything else, malformed ids included. */
export async function findFile(store: MetadataStore, id: string | undefined): Promise<FileRecord> {
  const file = id && isValidFileId(id) ? await store.getFile(id) : undefined;
  if (!file || file.state !== 'committed')
    throw new NotFoundError('no such file', 'FILE_NOT_FOUND');
  return file;
}

/** `deleted` once the file is a tombstone (its blobs are going or gone), whatever the reason. */
export function fileStatus(f: FileLimits, now = Date.now()): FileStatus {
  if (f.deletedAt !== null) return 'deleted';
  if (now >= f.expiresAt) return 'expired';
  if (f.maxDownloads > 0 && f.downloadsUsed >= f.maxDownloads) return 'exhausted';
  return 'active';
}

/** Downloads left, or null when unlimited. */
export function downloadsLeft(f: FileLimits): number | null {
  return f.maxDownloads === 0 ? null : Math.max(0, f.maxDownloads - f.downloadsUsed);
}

/** 410 for a file that can no longer be downloaded, naming why. */
export function assertDownloadable(file: FileRecord): void {
  assertNotGone(file);
  if (fileStatus(file) === 'exhausted') throw limitReached();
}

/** 410 for a file that expired or was deleted (its downloads may be used up: that is not gone). */
export function assertNotGone(file: FileRecord): void {
  switch (fileStatus(file)) {
    case 'deleted':
      if (file.deleteReason === 'deleted')
        throw new GoneError('FILE_DELETED', 'this file was deleted by its owner');
      throw new GoneError('FILE_EXPIRED', 'this link has expired');
    case 'expired':
      throw new GoneError('FILE_EXPIRED', 'this link has expired');
    case 'exhausted':
    case 'active':
  }
}

/** The 410 of a file with no downloads left (its status said so, or its counter did). */
export function limitReached(): GoneError {
  return new GoneError('DOWNLOAD_LIMIT_REACHED', 'this link has no downloads left');
}

/**
 * Codes of the refusals above that mean "no file behind this id" (`findFile`,
 * `assertNotGone`): gateway/http/rate-limit.ts counts them as misses. A
 * used-up link is not one: only holders of a real link see it.
 */
export const MISS_CODES: ReadonlySet<string> = new Set([
  'FILE_NOT_FOUND',
  'FILE_EXPIRED',
  'FILE_DELETED',
]);

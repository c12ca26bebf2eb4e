/**
 * What the SQL metadata stores (SQLite, PostgreSQL) share: the columns of a
 * row and their record, and the admin listing's query, written once for both
 * dialects (each names its own parameters).
 */
import type {
  FileListQuery,
  FileListStatus,
  FileRecord,
  ProcessingState,
  ReplicaRecord,
  ReplicaState,
  VariantName,
  VariantRecord,
} from './metadata-store.js';

export interface FileRow {
  id: string;
  name: string;
  size: number;
  content_type: string;
  sha256: string;
  state: FileRecord['state'];
  max_downloads: number;
  downloads_used: number;
  created_at: number;
  expires_at: number;
  delete_token_hash: string;
  owner: string;
  deleted_at: number | null;
  delete_reason: FileRecord['deleteReason'];
  processing: ProcessingState;
  processing_error: string | null;
  processing_attempts: number;
}

export function toFile(r: FileRow): FileRecord {
  return {
    id: r.id,
    name: r.name,
    size: r.size,
    contentType: r.content_type,
    sha256: r.sha256,
    state: r.state,
    maxDownloads: r.max_downloads,
    downloadsUsed: r.downloads_used,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    deleteTokenHash: r.delete_token_hash,
    owner: r.owner,
    deletedAt: r.deleted_at,
    deleteReason: r.delete_reason,
    processing: r.processing,
    processingError: r.processing_error,
    processingAttempts: r.processing_attempts,
  };
}

export interface ReplicaRow {
  key: string;
  file_id: string;
  node: string;
  state: ReplicaState;
  updated_at: number;
}

export function toReplica(r: ReplicaRow): ReplicaRecord {
  return { key: r.key, fileId: r.file_id, node: r.node, state: r.state, updatedAt: r.updated_at };
}

export interface VariantRow {
  file_id: string;
  variant: VariantName;
  size: number;
  width: number;
  height: number;
  content_type: string;
  sha256: string;
  created_at: number;
}

export function toVariant(r: VariantRow): VariantRecord {
  return {
    fileId: r.file_id,
    variant: r.variant,
    size: r.size,
    width: r.width,
    height: r.height,
    contentType: r.content_type,
    sha256: r.sha256,
    createdAt: r.created_at,
  };
}

/**
 * Each listing status as a condition on a files row at time `now` (a
 * parameter's placeholder, bound when used): the SQL twin of fileStatus() in
 * gateway/files/file-rules.ts, which must decide alike.
 */
function statusCondition(status: FileListStatus, now: () => string): string {
  const live = () => `state = 'committed' AND deleted_at IS NULL AND expires_at > ${now()}`;
  switch (status) {
    case 'pending':
      return `state = 'pending'`;
    case 'aborted':
      return `state = 'aborted'`;
    case 'deleted':
      return `state = 'committed' AND deleted_at IS NOT NULL`;
    case 'expired':
      return `state = 'committed' AND deleted_at IS NULL AND expires_at <= ${now()}`;
    case 'exhausted':
      return `${live()} AND max_downloads > 0 AND downloads_used >= max_downloads`;
    case 'active':
      return `${live()} AND (max_downloads = 0 OR downloads_used < max_downloads)`;
  }
}

/**
 * The admin listing as SQL: newest first, keyset-paged by (created_at, id).
 * `param` binds a value and returns its numbered placeholder in the store's
 * dialect (`$1`, `@p1`); a placeholder may appear more than once.
 */
export function listFilesSql(q: FileListQuery, param: (value: number | string) => string): string {
  const where: string[] = [];
  let nowParam: string | undefined; // bound once, and only if a condition uses it
  const now = () => (nowParam ??= param(q.now));
  if (q.status) where.push(statusCondition(q.status, now));
  if (q.expiringBefore !== undefined) {
    where.push(
      `state = 'committed' AND deleted_at IS NULL AND expires_at > ${now()} AND expires_at <= ${param(q.expiringBefore)}`,
    );
  }
  if (q.after) {
    const created = param(q.after.createdAt);
    where.push(
      `(created_at < ${created} OR (created_at = ${created} AND id < ${param(q.after.id)}))`,
    );
  }
  return `SELECT * FROM files ${where.length ? `WHERE (${where.join(') AND (')})` : ''}
     ORDER BY created_at DESC, id DESC LIMIT ${param(q.limit)}`;
}

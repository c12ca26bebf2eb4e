/**
 * What the SQL metadata stores (SQLite, PostgreSQL) share: the columns of a
 * row and their record, and the admin listing's query, written once for both
 * dialects (each names its own parameters).
 */
import { blobKey } from './keys.js';
import { layoutNodesSchema, type Layout, type LayoutNode } from './layout.js';
import type {
  FileListQuery,
  FileListStatus,
  FileRecord,
  PlacedFile,
  ProcessingState,
  ReplicaRecord,
  ReplicaState,
  ResumableUpload,
  UploadPart,
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

/** Every column of a file's row, for statements that select them beside another table's. */
export const FILE_COLUMNS = [
  'id',
  'name',
  'size',
  'content_type',
  'sha256',
  'state',
  'max_downloads',
  'downloads_used',
  'created_at',
  'expires_at',
  'delete_token_hash',
  'owner',
  'deleted_at',
  'delete_reason',
  'processing',
  'processing_error',
  'processing_attempts',
] as const satisfies readonly (keyof FileRow)[];

// A column added to FileRow but not to FILE_COLUMNS fails to compile here.
const everyFileColumn: Record<Exclude<keyof FileRow, (typeof FILE_COLUMNS)[number]>, never> = {};
void everyFileColumn;

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

export interface ResumableRow {
  id: string;
  file_id: string;
  name: string;
  content_type: string | null;
  upload_length: number | null;
  upload_offset: number;
  max_downloads: number;
  ttl_seconds: number;
  /** Upload-Metadata as JSON text. */
  metadata: string;
  client: string;
  upload_link: string | null;
  created_at: number;
  expires_at: number;
  state: ResumableUpload['state'];
  s3_bucket: string | null;
  s3_key: string | null;
}

export function toResumable(r: ResumableRow): ResumableUpload {
  return {
    id: r.id,
    fileId: r.file_id,
    name: r.name,
    contentType: r.content_type,
    length: r.upload_length,
    offset: r.upload_offset,
    maxDownloads: r.max_downloads,
    ttlSeconds: r.ttl_seconds,
    metadata: JSON.parse(r.metadata) as ResumableUpload['metadata'],
    client: r.client,
    uploadLink: r.upload_link,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    state: r.state,
    s3: r.s3_bucket === null || r.s3_key === null ? null : { bucket: r.s3_bucket, key: r.s3_key },
  };
}

export interface PartRow {
  key: string;
  upload_id: string;
  part_offset: number;
  size: number | null;
  sha256: string | null;
  /** The nodes as a JSON array. */
  nodes: string;
  /** 0 or 1 in SQLite, a boolean in PostgreSQL. */
  stored: number | boolean;
  created_at: number;
  part_number: number | null;
  md5: string | null;
}

export function toPart(r: PartRow): UploadPart {
  return {
    uploadId: r.upload_id,
    key: r.key,
    offset: r.part_offset,
    size: r.size,
    sha256: r.sha256,
    nodes: JSON.parse(r.nodes) as string[],
    stored: r.stored === true || r.stored === 1,
    createdAt: r.created_at,
    partNumber: r.part_number,
    md5: r.md5,
  };
}

export interface LayoutRow {
  version: number;
  created_at: number;
  /** The nodes as JSON text (not JSONB): metadata:copy checksums the text byte for byte. */
  nodes: string;
  note: string;
}

/** A layout as its row stores it; nodes the store could not read back are refused before they are written. */
export function layoutRow(l: Layout): LayoutRow {
  return {
    version: l.version,
    created_at: l.createdAt,
    nodes: JSON.stringify(checkedNodes(l.nodes, `layout version ${l.version}`)),
    note: l.note,
  };
}

/**
 * A stored layout, its nodes checked again: a row edited by hand (or written
 * by a newer Trove with a role this one does not know) fails loudly here
 * instead of placing data by a layout it misreads.
 */
export function toLayout(r: LayoutRow): Layout {
  const nodes = checkedNodes(JSON.parse(r.nodes), `layout version ${r.version} in the store`);
  return { version: r.version, createdAt: r.created_at, nodes, note: r.note };
}

function checkedNodes(nodes: unknown, what: string): LayoutNode[] {
  const parsed = layoutNodesSchema.safeParse(nodes);
  if (parsed.success) return parsed.data;
  throw new Error(`${what} is invalid: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
}

/**
 * The three reads of a placement page, bounded whatever its size: the page's
 * live committed files, then the variants and replica rows of all of them.
 * Each store gives its placeholders, and `ids`, its way of making a set of
 * the page's ids from one parameter (a JSON array, a text[]).
 */
export function placementSql(p: { afterId: string; limit: string; ids: string }) {
  return {
    files: `SELECT id, sha256, size FROM files
            WHERE state = 'committed' AND deleted_at IS NULL AND id > ${p.afterId}
            ORDER BY id LIMIT ${p.limit}`,
    variants: `SELECT file_id, variant, sha256, size FROM variants
               WHERE file_id IN ${p.ids} ORDER BY file_id, variant`,
    replicas: `SELECT key, file_id, node, state, updated_at FROM replicas
               WHERE file_id IN ${p.ids} ORDER BY key, node`,
  };
}

export interface PlacementFileRow {
  id: string;
  sha256: string;
  size: number;
}

/** A variant of a page's file, as a blob of it. */
export interface PlacementVariantRow {
  file_id: string;
  variant: string;
  sha256: string;
  size: number;
}

/**
 * A placement page from its three reads: each file with its blobs (the
 * original, then the variants in the order given) and its replica rows.
 */
export function toPlacedFiles(
  files: readonly PlacementFileRow[],
  variants: readonly PlacementVariantRow[],
  replicas: readonly ReplicaRow[],
): PlacedFile[] {
  const byId = new Map<string, PlacedFile>();
  for (const f of files) {
    byId.set(f.id, {
      id: f.id,
      blobs: [{ key: blobKey(f.id), sha256: f.sha256, size: f.size }],
      replicas: [],
    });
  }
  for (const v of variants) {
    byId
      .get(v.file_id)
      ?.blobs.push({ key: blobKey(v.file_id, v.variant), sha256: v.sha256, size: v.size });
  }
  for (const r of replicas) byId.get(r.file_id)?.replicas.push(toReplica(r));
  return [...byId.values()];
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

/**
 * The metadata store: files, their replicas, and the state machine of an
 * upload. Gateways and workers use only this interface, so the
 * SQLite implementation can be swapped for PostgreSQL when they outgrow one host.
 *
 * An upload is a row in state `pending` from before its first byte is sent to
 * a node until `commit`; only `committed` rows are visible to readers. A row
 * that can no longer commit becomes `aborted` until its blobs are known gone.
 * A committed file ends as a tombstone (`deletedAt` set): its downloads answer
 * 410, its blobs are removed from every node, and the row is purged later.
 */

import type { Layout } from './layout.js';
import type { S3MetadataStore } from './s3-metadata.js';

export type FileState = 'pending' | 'committed' | 'aborted';
export type ReplicaState = 'ok' | 'missing' | 'corrupt';
/** Why a committed file became a tombstone. */
export type DeleteReason = 'expired' | 'deleted';
/**
 * Where an upload stands with its variants: `pending` until the worker made
 * them (`done`) or gave up (`failed`, with a reason); `skipped` for files that
 * are not images.
 */
export type ProcessingState = 'pending' | 'done' | 'failed' | 'skipped';
/** The variants the worker makes of an image; each is stored under `blobKey(id, variant)`. */
export const VARIANT_NAMES = ['thumb', 'compressed'] as const;
export type VariantName = (typeof VARIANT_NAMES)[number];

/** Images get variants; anything else an upload allows (ALLOWED_TYPES) is stored as it is. */
export function initialProcessing(contentType: string): ProcessingState {
  return contentType.startsWith('image/') ? 'pending' : 'skipped';
}

export interface FileRecord {
  id: string;
  name: string;
  size: number;
  contentType: string;
  sha256: string;
  state: FileState;
  maxDownloads: number;
  downloadsUsed: number;
  createdAt: number;
  expiresAt: number;
  deleteTokenHash: string;
  /** Gateway that wrote the row; lets a restarted gateway find its own interrupted uploads. */
  owner: string;
  /**
   * Set when the file became a tombstone (expired and picked up for deletion,
   * or deleted by its owner). Its replica rows that remain are deletes still
   * owed to those nodes; the row itself is purged after the retention period.
   */
  deletedAt: number | null;
  deleteReason: DeleteReason | null;
  processing: ProcessingState;
  /** Why processing failed (or was skipped); null otherwise. */
  processingError: string | null;
  /**
   * Processing attempts that started and never finished: the worker died in
   * them. Counted before decoding, so an image that kills the worker is given
   * up after a few tries instead of crashing every worker that picks it up.
   */
  processingAttempts: number;
}

/** A variant of a file, stored as blob `<id>.<variant>` with its own replica rows. */
export interface VariantRecord {
  fileId: string;
  variant: VariantName;
  size: number;
  width: number;
  height: number;
  contentType: string;
  sha256: string;
  createdAt: number;
}

export interface ReplicaRecord {
  key: string;
  /** The file the blob belongs to (the key is the id, or `<id>.<variant>`). */
  fileId: string;
  node: string;
  state: ReplicaState;
  updatedAt: number;
}

export interface NodeReplica extends ReplicaRecord {
  /** The file's sha256 (the blob's, for the original; variants are checked by their source). */
  fileSha256: string;
  /** True while the file is committed and not a tombstone. */
  live: boolean;
}

export type NewUpload = Pick<
  FileRecord,
  | 'id'
  | 'name'
  | 'contentType'
  | 'maxDownloads'
  | 'createdAt'
  | 'expiresAt'
  | 'deleteTokenHash'
  | 'owner'
> & {
  /** The id of the signed upload link it came through, if any: its file count is rebuilt from these. */
  uploadLink?: string;
};

export interface CommitFile {
  id: string;
  size: number;
  sha256: string;
  /** Final options (multipart fields may arrive after the file). */
  maxDownloads: number;
  expiresAt: number;
  replicas: { key: string; node: string; state: ReplicaState }[];
}

/**
 * Where a file stands, as the admin API filters it: an upload that has not
 * committed (`pending`, `aborted`), or a committed file's status as
 * `GET /files/:id` reports it (`active`, `exhausted`, `expired`, `deleted`).
 */
export const FILE_LIST_STATUSES = [
  'pending',
  'aborted',
  'active',
  'exhausted',
  'expired',
  'deleted',
] as const;
export type FileListStatus = (typeof FILE_LIST_STATUSES)[number];

export interface FileListQuery {
  status?: FileListStatus;
  /** Only live committed files that expire after `now` and no later than this (ms). */
  expiringBefore?: number;
  /** The time statuses and expiry are judged at (ms). */
  now: number;
  limit: number;
  /** The last file of the previous page: this page starts after it (created_at, id descending). */
  after?: { createdAt: number; id: string };
}

/** A live committed file with its blobs (original and variants) and every replica row: the rebalance's unit. */
export interface PlacedFile {
  id: string;
  /** The original first, then the variants, each with the sha256 a copy must have. */
  blobs: { key: string; sha256: string; size: number }[];
  replicas: ReplicaRecord[];
}

/**
 * A resumable (tus) upload: the bytes arrive over many requests, each
 * stored as a replicated part (a blob of its own), and are composed into the
 * file's blob on the nodes when the last one lands (docs/resumable-uploads.md).
 * `uploading` while bytes may come; `done` once the file is committed;
 * `terminated` when the client ended it (DELETE) or it expired. A row that is
 * not `uploading`, or is past `expiresAt`, is the cleanup's: its parts are
 * removed from the nodes, then the row.
 */
export type ResumableState = 'uploading' | 'done' | 'terminated';

export interface ResumableUpload {
  /** The tus upload id (its URL): secret to the uploader, never the file's id. */
  id: string;
  /** The id the file gets when the upload completes (the share link's). */
  fileId: string;
  name: string;
  /** Decided from the first bytes (the first part); null before they came. */
  contentType: string | null;
  /** Upload-Length; null while the client defers it. */
  length: number | null;
  /** Bytes stored on a write quorum: the sum of the stored parts' sizes. */
  offset: number;
  maxDownloads: number;
  /** The file's lifetime, counted from completion. */
  ttlSeconds: number;
  /** Upload-Metadata as the client sent it (echoed by HEAD). */
  metadata: Record<string, string | null>;
  /** Who the per-client limit counts it against (the client address). */
  client: string;
  uploadLink: string | null;
  createdAt: number;
  /** An upload still incomplete then is removed (tus expiration extension). */
  expiresAt: number;
  state: ResumableState;
  /** The bucket and key of an S3 multipart upload; null for a tus upload. */
  s3: { bucket: string; key: string } | null;
}

export type NewResumable = Omit<ResumableUpload, 'offset' | 'state' | 'contentType' | 's3'> & {
  s3?: ResumableUpload['s3'];
};

/**
 * One request's bytes of a resumable upload, on `nodes`: for an S3 part, blob
 * `key`; for a tus part, the range [offset, offset + size) of the upload's
 * staged file (resumable-parts.ts stagingKey).
 */
export interface UploadPart {
  uploadId: string;
  /**
   * `<fileId>.part-<offset or number>-<nonce>`: unique per attempt, so a
   * retried part never overwrites another (an S3 part's blob key; a tus
   * part's row id).
   */
  key: string;
  offset: number;
  /** null while being written (the row exists so a crash mid-write leaves nothing untracked). */
  size: number | null;
  sha256: string | null;
  /** Where it was sent (while writing) or where it is stored (once stored). */
  nodes: string[];
  stored: boolean;
  createdAt: number;
  /** An S3 multipart part's number (1-10000); null for a tus part, which is known by its offset. */
  partNumber: number | null;
  /** Hex MD5 of an S3 part's bytes (its ETag); null for a tus part and until stored. */
  md5: string | null;
}

/** The S3 API's methods (access keys, buckets, objects) are in s3-metadata.ts. */
export interface MetadataStore {
  /** The S3 API's access keys, buckets and objects (s3-metadata.ts), on the same database. */
  readonly s3: S3MetadataStore;
  /** Records an upload about to stream to the nodes. */
  beginUpload(upload: NewUpload): Promise<void>;
  /** Files uploaded through upload link `linkId` that were not aborted (stored, or being stored). */
  countLinkUploads(linkId: string): Promise<number>;
  /**
   * Makes uploads visible, all or none (one transaction). Rejects with
   * UploadAbortedError when one of them is no longer pending (a cleanup aborted it).
   */
  commitUploads(files: CommitFile[]): Promise<void>;
  /**
   * Marks an upload that will never commit; its blobs still need removing.
   * True when the row is `aborted` now (it was pending, or already aborted);
   * false when it committed meanwhile or is gone: then its blobs are not ours to delete.
   */
  abortUpload(id: string): Promise<boolean>;
  /** Forgets a pending or aborted upload whose blobs are gone. */
  forgetUpload(id: string): Promise<void>;
  /** Uploads to clean up: aborted ones, pending ones of `owner` from before `ownerSince`, and all pending older than `staleBefore`. */
  abandonedUploads(q: {
    owner: string;
    ownerSince: number;
    staleBefore: number;
    limit: number;
  }): Promise<FileRecord[]>;
  /** A file in any state, or undefined. */
  getFile(id: string): Promise<FileRecord | undefined>;
  replicasOf(fileId: string): Promise<ReplicaRecord[]>;
  /**
   * Sets a replica row's state; returns whether a row changed. With `seen` (the
   * row as read earlier), only if it is still so: same state and `updatedAt`,
   * so that a decision made on an older reading never undoes a newer one.
   */
  setReplicaState(
    key: string,
    node: string,
    state: ReplicaState,
    seen?: Pick<ReplicaRecord, 'state' | 'updatedAt'>,
  ): Promise<boolean>;
  /** Live committed files' replica rows that are not `ok` (repair's work list). */
  unhealthyReplicas(limit: number): Promise<ReplicaRecord[]>;
  /** Every replica row placed on `node`, with its file's state (anti-entropy compares them with the node's listing). */
  replicasOnNode(node: string): Promise<NodeReplica[]>;
  /** Drops a replica row once its blob is known gone from that node. */
  forgetReplica(key: string, node: string): Promise<void>;

  /** A file's variants (none until it is processed). */
  variantsOf(fileId: string): Promise<VariantRecord[]>;
  /**
   * Counts a processing attempt of a file still `pending` and returns the
   * attempts now unfinished (this one included), or null when the file is not
   * pending (processed, failed, skipped, or unknown).
   */
  beginProcessing(fileId: string): Promise<number | null>;
  /** Uncounts an attempt that ended without finishing the work (it will be retried). */
  abandonProcessing(fileId: string): Promise<void>;
  /**
   * Records the variants and their replica rows and marks the file `done`,
   * in one transaction. Idempotent: a variant recorded again replaces itself.
   * Rows are recorded even for a file that became a tombstone meanwhile, so
   * its deletion removes these blobs too; false if the file row is gone.
   */
  completeProcessing(
    fileId: string,
    variants: Omit<VariantRecord, 'fileId'>[],
    replicas: { key: string; node: string; state: ReplicaState }[],
  ): Promise<boolean>;
  /**
   * Records some of the variants (the thumbnail, before the compressed copy
   * is made) with their replica rows and ends the attempt, in one
   * transaction; the file stays `pending`. False if the file row is gone.
   */
  recordVariants(
    fileId: string,
    variants: Omit<VariantRecord, 'fileId'>[],
    replicas: { key: string; node: string; state: ReplicaState }[],
  ): Promise<boolean>;
  /** Marks a file's processing failed for good, with the reason shown to clients. */
  failProcessing(fileId: string, reason: string): Promise<void>;
  /** Live committed files still `pending` processing, created before `createdBefore` (the sweep's work list). */
  pendingProcessing(createdBefore: number, limit: number): Promise<FileRecord[]>;

  /**
   * Settles a batch of downloads of a limited file in one conditional write:
   * `returns` slots handed back first (never below zero), then up to `takes`
   * granted while `downloads_used` stays within `max_downloads`. Resolves once
   * the new count is durable, with the count before and after the batch (the
   * grants are `after - max(0, before - returns)`), or undefined for an
   * unknown file. The store is the arbiter: two gateways, or a lock holder
   * that stalled past its lock's TTL, can never grant the same slot twice or
   * move the count backwards.
   */
  grantDownloads(
    id: string,
    takes: number,
    returns: number,
  ): Promise<{ before: number; after: number } | undefined>;

  /** Turns a live committed file into a tombstone; false if it already was one (or is unknown). */
  markDeleted(id: string, reason: DeleteReason, at: number): Promise<boolean>;
  /** Live committed files whose expiry has passed (the sweep's work list). */
  expiredLiveFiles(now: number, limit: number): Promise<FileRecord[]>;
  /** Tombstones from before `deletedBefore` that still have replica rows (deletes owed). */
  tombstonesWithBlobs(deletedBefore: number, limit: number): Promise<FileRecord[]>;
  /** Removes tombstones deleted before `deletedBefore`, with any rows left; returns how many. */
  purgeTombstones(deletedBefore: number): Promise<number>;
  /** Live committed files, and those of them with fewer than `copies` healthy replicas. */
  counts(copies: number): Promise<{ objects: number; underReplicated: number }>;
  /** One page of files, newest first, for the admin API (keyset paging: never OFFSET). */
  listFiles(q: FileListQuery): Promise<FileRecord[]>;
  /** The newest layout version, or undefined before the first is saved. */
  currentLayout(): Promise<Layout | undefined>;
  /**
   * Saves `layout` as the next version: only when its version is the newest
   * one + 1 (1 on an empty store). False when that version exists already:
   * another change got there first, read the layout again.
   */
  saveLayout(layout: Layout): Promise<boolean>;
  /** The newest `limit` layout versions, newest first. */
  layoutHistory(limit: number): Promise<Layout[]>;
  /** How many replica rows are on `node`, of any file in any state (a node is removed only at 0). */
  replicaCountOnNode(node: string): Promise<number>;
  /**
   * Adds a replica row for blob `key` of file `fileId` on `node`, only while
   * the file is live and committed, before a copy is sent there (so a copy
   * that lands is always tracked, and deleting the file deletes it too). An
   * existing row is left as it is. True when the row exists now.
   */
  addReplica(fileId: string, key: string, node: string, state: ReplicaState): Promise<boolean>;
  /**
   * Live committed files in id order after `afterId`, each with its blobs and
   * every replica row: the rebalance compares them with the placement.
   */
  placementPage(afterId: string | undefined, limit: number): Promise<PlacedFile[]>;

  /** Records a new resumable upload (state `uploading`, offset 0). */
  createResumable(upload: NewResumable): Promise<void>;
  getResumable(id: string): Promise<ResumableUpload | undefined>;
  /** The upload's parts, stored or being written, by offset (then creation). */
  partsOf(uploadId: string): Promise<UploadPart[]>;
  /** The part row with this blob key, if any (anti-entropy leaves tracked parts alone). */
  getPart(key: string): Promise<UploadPart | undefined>;
  /**
   * What `client` holds in incomplete uploads (state `uploading`, not expired
   * at `now`): how many, and their bytes (Upload-Length, or the offset while
   * the length is deferred). The per-client limit is checked against it.
   */
  resumableUsage(client: string, now: number): Promise<{ uploads: number; bytes: number }>;
  /** Sets a deferred Upload-Length; false unless the upload is `uploading` with no length yet. */
  declareResumableLength(id: string, length: number): Promise<boolean>;
  /** Records a part about to be written (stored = false, size/sha256 null). */
  beginPart(
    part: Pick<UploadPart, 'uploadId' | 'key' | 'offset' | 'nodes' | 'createdAt'> & {
      /** An S3 part's number (its offset is then 0: S3 parts are placed by number). */
      partNumber?: number;
    },
  ): Promise<void>;
  /**
   * Marks a begun part stored and moves the upload's offset past it, in one
   * transaction, only while the upload is `uploading` and its offset is still
   * `part.offset` (a stale or concurrent request never moves it). Sets the
   * content type when given and none is set yet. False when nothing changed:
   * the part's blobs are then the caller's to remove.
   */
  storePart(part: {
    uploadId: string;
    key: string;
    offset: number;
    size: number;
    sha256: string;
    nodes: string[];
    contentType?: string;
  }): Promise<boolean>;
  /** Drops a part row once its blobs are gone from the nodes. */
  forgetPart(key: string): Promise<void>;
  /** Ends an upload: `uploading` → `done` (committed) or `terminated`; false if it was not `uploading`. */
  endResumable(id: string, state: 'done' | 'terminated'): Promise<boolean>;
  /**
   * Uploads the cleanup has work on, oldest first: `terminated` ones, those
   * past `expiresAt` at `now` (any state), and `done` ones with parts left (a
   * finished upload's row stays, parts gone, until it expires: GET /tus/:id
   * answers from it).
   */
  staleResumables(now: number, limit: number): Promise<ResumableUpload[]>;
  /** Removes an upload's row and any part rows left. */
  forgetResumable(id: string): Promise<void>;

  /** True when the store answers (for /ready). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

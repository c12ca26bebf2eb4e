/**
 * Trove's data store for @tus/server: an upload is a row of the metadata
 * store (so any gateway can serve its next request) and its bytes are parts
 * on the storage nodes (part-writer.ts), composed into the file when the last
 * byte is stored (completion.ts). @tus/server speaks the protocol; this
 * module only answers its questions.
 */
import type { Readable } from 'node:stream';
import { DataStore, ERRORS, Upload } from '@tus/utils';
import { UnsupportedMediaTypeError } from '../../shared/errors.js';
import { newFileId } from '../../shared/keys.js';
import type { ResumableUpload } from '../../shared/metadata-store.js';
import { removeParts } from '../../shared/resumable-parts.js';
import { completeUpload, partDeps } from './completion.js';
import { writePart } from './part-writer.js';
import type { ResumableDeps } from './resumable-deps.js';
import { currentTusRequest } from './tus-request.js';
import { uploadSettings } from './upload-metadata.js';

export class TroveTusStore extends DataStore {
  constructor(private readonly deps: ResumableDeps) {
    super();
    // 'checksum' is Trove's own (upload-checksum.ts); the rest are @tus/server's with this store.
    this.extensions = [
      'creation',
      'creation-with-upload',
      'creation-defer-length',
      'termination',
      'expiration',
      'checksum',
    ];
  }

  override async create(upload: Upload): Promise<Upload> {
    const request = currentTusRequest();
    const settings = uploadSettings(upload.metadata ?? {}, this.deps.limits, request.link?.options);
    const createdAt = Date.now();
    await this.deps.store.createResumable({
      id: upload.id,
      fileId: newFileId(),
      name: settings.name,
      length: upload.size ?? null,
      maxDownloads: settings.maxDownloads,
      ttlSeconds: settings.ttlSeconds,
      metadata: upload.metadata ?? {},
      client: request.client,
      uploadLink: request.link?.link.id ?? null,
      createdAt,
      expiresAt: createdAt + this.getExpiration(),
    });
    upload.creation_date = new Date(createdAt).toISOString();
    return upload;
  }

  /** Called under the upload's lock by HEAD and PATCH: an upload whose bytes are all in is finished here if it was not yet. */
  override async getUpload(id: string): Promise<Upload> {
    let row = await this.row(id);
    if (row.state === 'uploading' && row.length !== null && row.offset === row.length) {
      await completeUpload(this.deps, row);
      row = await this.row(id);
    }
    return toTus(row);
  }

  override async write(stream: Readable, id: string, offset: number): Promise<number> {
    const row = await this.row(id);
    if (row.state !== 'uploading') return offset; // finished already: an empty PATCH at its end
    const part = await writePart(this.deps, row, offset, stream, currentTusRequest()).catch(
      async (err: unknown) => {
        // A type that is not allowed will not become allowed: the upload ends here.
        if (err instanceof UnsupportedMediaTypeError) await this.remove(id);
        throw err;
      },
    );
    const end = offset + part.bytes;
    if (row.length !== null && end === row.length) {
      await completeUpload(this.deps, {
        ...row,
        offset: end,
        contentType: row.contentType ?? part.contentType!,
      });
    }
    return end;
  }

  override async declareUploadLength(id: string, length: number): Promise<void> {
    if (!(await this.deps.store.declareResumableLength(id, length))) throw ERRORS.INVALID_LENGTH;
  }

  /** Termination: the upload ends at once; its parts go now, or with the sweep if a node is away. */
  override async remove(id: string): Promise<void> {
    const row = await this.row(id);
    if (!(await this.deps.store.endResumable(id, 'terminated'))) throw ERRORS.FILE_NOT_FOUND;
    await removeParts(partDeps(this.deps), row);
  }

  /** The worker removes expired uploads (worker/resumable-sweep.ts); a gateway never does. */
  override async deleteExpired(): Promise<number> {
    return 0;
  }

  override getExpiration(): number {
    return this.deps.resumable.resumableUploadExpirySeconds * 1000;
  }

  /** The upload's row; 404 when unknown, terminated, or an S3 multipart upload's (gateway/s3). */
  private async row(id: string): Promise<ResumableUpload> {
    const row = await this.deps.store.getResumable(id);
    if (!row || row.state === 'terminated' || row.s3 !== null) throw ERRORS.FILE_NOT_FOUND;
    return row;
  }
}

function toTus(row: ResumableUpload): Upload {
  return new Upload({
    id: row.id,
    size: row.length ?? undefined,
    offset: row.state === 'done' ? row.length! : row.offset,
    metadata: row.metadata,
    creation_date: new Date(row.createdAt).toISOString(),
  });
}

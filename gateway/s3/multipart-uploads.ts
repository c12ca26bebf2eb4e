/**
 * S3 multipart uploads as Trove keeps them: a resumable upload row (the one
 * tus uploads use, so the worker's sweep expires them and removes their
 * parts alike) carrying the bucket and key, whose id is the UploadId. What
 * CreateMultipartUpload was told that the object needs at the end (its user
 * metadata, its Content-Type) rides in the row's metadata map.
 */
import type { ResumableUpload } from '../../shared/metadata-store.js';
import type { ObjectCall, S3Deps } from './s3-context.js';
import { S3Error } from './s3-errors.js';

const META = 'x-amz-meta-';
const CONTENT_TYPE = 'content-type';

/** The row's metadata map for what the object will carry. */
export function uploadMetadata(
  userMetadata: Record<string, string>,
  contentType: string | undefined,
): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(userMetadata)) metadata[META + name] = value;
  if (contentType !== undefined) metadata[CONTENT_TYPE] = contentType;
  return metadata;
}

/** The object's user metadata, back from the row's metadata map. */
export function userMetadataOfUpload(upload: ResumableUpload): Record<string, string> {
  const userMetadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(upload.metadata))
    if (name.startsWith(META) && value !== null) userMetadata[name.slice(META.length)] = value;
  return userMetadata;
}

/** The call's upload, if it is an S3 upload of this very bucket and key (any state). */
export async function findUpload(
  deps: S3Deps,
  call: ObjectCall,
): Promise<ResumableUpload | undefined> {
  const row = await deps.store.getResumable(call.request.uploadId ?? '');
  if (row?.s3?.bucket !== call.bucket || row.s3.key !== call.key) return undefined;
  return row;
}

/** The call's upload while parts may still come to it: else 404 NoSuchUpload. */
export async function openUpload(deps: S3Deps, call: ObjectCall): Promise<ResumableUpload> {
  const row = await findUpload(deps, call);
  if (row?.state !== 'uploading' || row.expiresAt <= Date.now())
    throw noSuchUpload(call.request.uploadId ?? '');
  return row;
}

export function noSuchUpload(uploadId: string): S3Error {
  return new S3Error(
    'NoSuchUpload',
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    { UploadId: uploadId },
  );
}

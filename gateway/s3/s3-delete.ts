/**
 * DeleteObject and DeleteObjects. The key's row goes, and its file is
 * deleted as DELETE /files/:id deletes it (a tombstone at once, so the
 * share link answers 410; the blobs after the worker's grace). As S3, a
 * key that does not exist is deleted all the same.
 */
import { deleteNow } from '../files/deletion.js';
import { isValidObjectKey } from '../../shared/s3-names.js';
import { readSmallBody } from './s3-body.js';
import { ownedBucket, XML } from './s3-buckets.js';
import type { BucketCall, ObjectCall, S3Deps } from './s3-context.js';
import { DELETE_OBJECTS_BODY_LIMIT, parseDeleteObjects } from './s3-xml-bodies.js';
import { deleteResultXml, type DeleteFailure } from './s3-xml.js';
import { asS3Error } from './s3-error-response.js';

export async function deleteObject(deps: S3Deps, call: ObjectCall) {
  await ownedBucket(deps, call);
  await removeKey(deps, call.bucket, call.key);
  return call.c.body(null, 204);
}

export async function deleteObjects(deps: S3Deps, call: BucketCall) {
  await ownedBucket(deps, call);
  const request = parseDeleteObjects(await readSmallBody(call, DELETE_OBJECTS_BODY_LIMIT));
  const deleted: string[] = [];
  const errors: DeleteFailure[] = [];
  // One at a time: each is a transaction of its own, and a failure is reported for its key alone.
  for (const { key } of request.objects) {
    try {
      if (isValidObjectKey(key)) await removeKey(deps, call.bucket, key);
      deleted.push(key);
    } catch (err) {
      const s3 = asS3Error(err);
      if (!s3) deps.log.error({ err, key }, 'S3 DeleteObjects: a key failed');
      errors.push({
        key,
        code: s3?.code ?? 'InternalError',
        message: s3?.message ?? 'We encountered an internal error. Please try again.',
      });
    }
  }
  return call.c.body(deleteResultXml(request.quiet ? [] : deleted, errors), 200, XML);
}

async function removeKey(deps: S3Deps, bucket: string, key: string): Promise<void> {
  const fileId = await deps.store.s3.deleteObject(bucket, key);
  if (fileId !== undefined) await deleteNow(deps, fileId, `S3 delete of ${bucket}/${key}`);
}

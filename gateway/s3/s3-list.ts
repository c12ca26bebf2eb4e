/**
 * ListObjects (v1) and ListObjectsV2: listing.ts pages over the store's
 * ordered scan of the bucket's visible objects.
 */
import type { S3MetadataStore } from '../../shared/s3-metadata.js';
import type { BucketCall, S3Deps } from './s3-context.js';
import { ownedBucket, ownerOf, XML } from './s3-buckets.js';
import {
  listObjectsV1,
  listObjectsV2,
  listV1Request,
  listV2Request,
  type KeyScan,
} from './listing.js';
import { listObjectsV1Xml, listObjectsV2Xml, type ObjectSummary } from './s3-xml.js';

/** The bucket's visible objects at `now`, as listing.ts scans them. */
export function bucketScan(
  store: Pick<S3MetadataStore, 'listObjects'>,
  bucket: string,
  now: number,
): KeyScan<ObjectSummary> {
  return async (q) => {
    // A bound the key itself may meet (after a common prefix) is the store's startAt.
    const bound = q.inclusive ? { startAt: q.startAfter } : { startAfter: q.startAfter };
    const objects = await store.listObjects(bucket, {
      ...bound,
      prefix: q.prefix,
      limit: q.limit,
      now,
    });
    return objects.map((o) => ({
      key: o.key,
      lastModified: new Date(o.lastModified),
      etag: o.etag,
      size: o.size,
    }));
  };
}

export async function listObjects(deps: S3Deps, call: BucketCall) {
  await ownedBucket(deps, call);
  const request = listV1Request(call.request.query);
  const result = await listObjectsV1(bucketScan(deps.store.s3, call.bucket, Date.now()), request);
  const xml = listObjectsV1Xml(call.bucket, request, result, ownerOf(call.auth.accessKeyId));
  return call.c.body(xml, 200, XML);
}

export async function listObjectsV2Op(deps: S3Deps, call: BucketCall) {
  await ownedBucket(deps, call);
  const request = listV2Request(call.request.query);
  const result = await listObjectsV2(bucketScan(deps.store.s3, call.bucket, Date.now()), request);
  const xml = listObjectsV2Xml(call.bucket, request, result, ownerOf(call.auth.accessKeyId));
  return call.c.body(xml, 200, XML);
}

/**
 * Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
 * GetBucketLocation, and the ownership rule every bucket-scoped operation
 * goes through first: a bucket belongs to the access key that created it,
 * and every other key is refused (403 AccessDenied, as S3 answers for a
 * bucket of another account).
 */
import type { S3Bucket } from '../../shared/s3-metadata.js';
import { bucketNameProblem } from '../../shared/s3-names.js';
import type { BucketCall, S3Call, S3Deps } from './s3-context.js';
import { S3Error } from './s3-errors.js';
import { readSmallBody } from './s3-body.js';
import { CREATE_BUCKET_BODY_LIMIT, parseCreateBucketConfiguration } from './s3-xml-bodies.js';
import { listAllMyBucketsXml, locationConstraintXml, type Owner } from './s3-xml.js';

export const XML = { 'content-type': 'application/xml' };

/** The owner S3 shows in listings: Trove has no accounts, so the access key stands for one. */
export function ownerOf(accessKeyId: string): Owner {
  return { id: accessKeyId, displayName: accessKeyId };
}

/** The bucket of the call, if the caller's key owns it: else 404 NoSuchBucket or 403 AccessDenied. */
export async function ownedBucket(deps: S3Deps, call: BucketCall): Promise<S3Bucket> {
  return owned(await deps.store.s3.getBucket(call.bucket), call);
}

/** `bucket` (the call's, as read), if the caller's key owns it: else 404 NoSuchBucket or 403 AccessDenied. */
export function owned(bucket: S3Bucket | undefined, call: BucketCall): S3Bucket {
  if (!bucket) throw noSuchBucket(call.bucket);
  if (bucket.owner !== call.auth.accessKeyId) throw new S3Error('AccessDenied', 'Access Denied');
  return bucket;
}

export function noSuchBucket(name: string): S3Error {
  return new S3Error('NoSuchBucket', 'The specified bucket does not exist', {
    BucketName: name,
  });
}

export async function listBuckets(deps: S3Deps, call: S3Call) {
  const buckets = await deps.store.s3.listBuckets(call.auth.accessKeyId);
  const xml = listAllMyBucketsXml(
    ownerOf(call.auth.accessKeyId),
    buckets.map((b) => ({ name: b.name, creationDate: new Date(b.createdAt) })),
  );
  return call.c.body(xml, 200, XML);
}

/**
 * CreateBucket. As S3 in us-east-1, creating a bucket this key already owns
 * answers 200 again; a name another key holds is 409 BucketAlreadyExists.
 */
export async function createBucket(deps: S3Deps, call: BucketCall) {
  const problem = bucketNameProblem(call.bucket);
  if (problem !== undefined)
    throw new S3Error('InvalidBucketName', `The specified bucket is not valid: it ${problem}`, {
      BucketName: call.bucket,
    });
  const body = await readSmallBody(call, CREATE_BUCKET_BODY_LIMIT);
  const { locationConstraint } = parseCreateBucketConfiguration(body);
  const region = deps.s3.s3Region;
  if (locationConstraint !== undefined && locationConstraint !== region)
    throw new S3Error(
      'IllegalLocationConstraintException',
      `The ${locationConstraint} location constraint is incompatible with this endpoint's region, ${region}`,
    );
  const result = await deps.store.s3.createBucket({
    name: call.bucket,
    owner: call.auth.accessKeyId,
    createdAt: Date.now(),
  });
  if (result === 'exists')
    throw new S3Error(
      'BucketAlreadyExists',
      'The requested bucket name is not available. Please select a different name and try again.',
      { BucketName: call.bucket },
    );
  if (result === 'owned-by-you' && region !== 'us-east-1')
    throw new S3Error(
      'BucketAlreadyOwnedByYou',
      'Your previous request to create the named bucket succeeded and you already own it.',
      { BucketName: call.bucket },
    );
  return call.c.body(null, 200, { location: `/${call.bucket}` });
}

export async function headBucket(deps: S3Deps, call: BucketCall) {
  await ownedBucket(deps, call);
  return call.c.body(null, 200, { 'x-amz-bucket-region': deps.s3.s3Region });
}

export async function deleteBucket(deps: S3Deps, call: BucketCall) {
  await ownedBucket(deps, call);
  const result = await deps.store.s3.deleteBucket(call.bucket, Date.now());
  if (result === 'not-empty')
    throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty', {
      BucketName: call.bucket,
    });
  // 'no-bucket': deleted meanwhile by another request of its owner; DELETE is idempotent.
  return call.c.body(null, 204);
}

export async function getBucketLocation(deps: S3Deps, call: BucketCall) {
  await ownedBucket(deps, call);
  return call.c.body(locationConstraintXml(deps.s3.s3Region), 200, XML);
}

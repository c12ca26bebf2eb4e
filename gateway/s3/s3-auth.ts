/**
 * Who sent an S3 request: its SigV4 signature verified against the access
 * key's secret. Trove has no public buckets, so an anonymous request is
 * refused. A presigned URL acts as its signer (the key's owner delegated
 * that one request, until X-Amz-Expires, past which it is 403 "Request has
 * expired"); `auth.presigned` tells the operations, and a presigned
 * GetObject counts a download of the object's share link (s3-get.ts,
 * docs/s3.md#presigned-urls).
 */
import type { IncomingMessage } from 'node:http';
import { splitTarget } from './s3-request.js';
import { S3Error } from './s3-errors.js';
import { verifySigV4, type RawRequest, type SigV4Auth } from './sigv4.js';
import type { AccessKeys } from './access-keys.js';

export interface S3AuthDeps {
  accessKeys: Pick<AccessKeys, 'secretFor'>;
  /** S3_REGION: the only region a credential may be scoped to. */
  region: string;
}

/** The request as node:http received it: raw path and query (never normalised), headers lower-cased. */
export function rawRequestOf(incoming: IncomingMessage): RawRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(incoming.headers)) {
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { method: incoming.method ?? 'GET', ...splitTarget(incoming.url ?? '/'), headers };
}

/** The verified signer of `incoming`; throws the S3Error to answer otherwise. */
export async function authenticate(
  deps: S3AuthDeps,
  incoming: IncomingMessage,
): Promise<SigV4Auth> {
  const auth = await verifySigV4(rawRequestOf(incoming), (id) => deps.accessKeys.secretFor(id), {
    region: deps.region,
  });
  if (auth === undefined)
    throw new S3Error('AccessDenied', 'Access Denied (anonymous requests are not accepted)');
  return auth;
}

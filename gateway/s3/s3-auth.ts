/**
 * Who sent an S3 request: its SigV4 signature verified against the access
 * key's secret. Trove has no public buckets, so an anonymous request is
 * refused. A presigned URL acts as its signer (the key's owner delegated
 * that one request, until X-Amz-Expires, past which it is 403 "Request has
 * expired"); `auth.presigned` tells the operations, and a presigned
 * GetObject counts a download of the object's share link (s3-get.ts,
 * docs/s3.md#presigned-urls).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { splitTarget } from './s3-request.js';
import { S3Error } from './s3-errors.js';
import { checkedClaim, verifyClaim, type RawRequest, type SigV4Auth } from './sigv4.js';
import type { AccessKeys } from './access-keys.js';

export interface S3AuthDeps {
  accessKeys: Pick<AccessKeys, 'secretFor' | 'cachedSecret'>;
  /** S3_REGION: the only region a credential may be scoped to. */
  region: string;
}

/** The request as node:http received it: raw path and query (never normalised), headers lower-cased. */
export function rawRequestOf(incoming: IncomingMessage): RawRequest {
  return {
    method: incoming.method ?? 'GET',
    ...splitTarget(incoming.url ?? '/'),
    headers: joined(incoming.headers),
  };
}

/**
 * Headers with repeats joined by ', '. node:http joins them all but
 * Set-Cookie, which it keeps as an array: without one, its object serves as is.
 */
function joined(headers: IncomingHttpHeaders): RawRequest['headers'] {
  if (headers['set-cookie'] === undefined) return headers as RawRequest['headers'];
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers))
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

/** The verified signer of `incoming`; throws the S3Error to answer otherwise. */
export async function authenticate(
  deps: S3AuthDeps,
  incoming: IncomingMessage,
): Promise<SigV4Auth> {
  const request = rawRequestOf(incoming);
  const options = { region: deps.region };
  const claim = checkedClaim(request, options);
  if (claim === undefined)
    throw new S3Error('AccessDenied', 'Access Denied (anonymous requests are not accepted)');
  // The key's secret is almost always cached: then nothing here waits.
  const { accessKeyId } = claim;
  const secret =
    deps.accessKeys.cachedSecret(accessKeyId)?.secret ??
    (await deps.accessKeys.secretFor(accessKeyId));
  return verifyClaim(request, claim, secret, options);
}

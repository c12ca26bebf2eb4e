/**
 * The token of a signed upload link: `base64url(JSON payload) "." base64url(HMAC-SHA256)`.
 * The key is derived from the cluster secret, so every gateway of a cluster
 * accepts the links any of them minted, and nothing else can mint one.
 *
 * Verification says why a token is refused (a wire code per reason), and
 * never trusts the payload before its signature checked out.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ForbiddenError } from '../../shared/errors.js';

/** What every token of this kind is for; a token signed for anything else is refused. */
export const UPLOAD_PURPOSE = 'upload';

/** Options the link fixes for every file uploaded through it (unset ones follow the uploader or the defaults). */
export interface UploadLinkOptions {
  max_downloads?: number;
  ttl?: number;
}

export interface UploadLink {
  /** Random id: names the link's file counter in Redis. */
  id: string;
  /** Expiry, Unix seconds. */
  exp: number;
  /** Files the link may upload in all. */
  files: number;
  purpose: typeof UPLOAD_PURPOSE;
  options: UploadLinkOptions;
}

const payloadSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  exp: z.number().int().positive(),
  files: z.number().int().positive(),
  purpose: z.string(),
  options: z.object({
    max_downloads: z.number().int().nonnegative().optional(),
    ttl: z.number().int().positive().optional(),
  }),
});

/** HMAC(cluster secret, "trove upload links"): a key of its own, so no other signature of the cluster can pass for a link. */
export function uploadLinkKey(clusterSecret: string): Buffer {
  return createHmac('sha256', clusterSecret).update('trove upload links').digest();
}

/** A fresh link: `files` uploads until `exp` (Unix seconds). */
export function newUploadLink(exp: number, files: number, options: UploadLinkOptions): UploadLink {
  return {
    id: randomBytes(16).toString('base64url'),
    exp,
    files,
    purpose: UPLOAD_PURPOSE,
    options,
  };
}

function sign(key: Buffer, body: string): Buffer {
  return createHmac('sha256', key).update(body).digest();
}

export function signUploadLink(key: Buffer, link: UploadLink): string {
  const body = Buffer.from(JSON.stringify(link)).toString('base64url');
  return `${body}.${sign(key, body).toString('base64url')}`;
}

const invalid = (why: string) =>
  new ForbiddenError(`this upload link is not valid: ${why}`, 'UPLOAD_LINK_INVALID');

/** The link a token carries; 403 UPLOAD_LINK_INVALID (malformed, tampered, wrong purpose) or UPLOAD_LINK_EXPIRED. */
export function verifyUploadLink(key: Buffer, token: string, now = Date.now()): UploadLink {
  const parts = token.split('.');
  if (parts.length !== 2 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p)))
    throw invalid('it is not a link token (payload.signature)');
  const [body, signature] = parts as [string, string];
  const given = Buffer.from(signature, 'base64url');
  const expected = sign(key, body);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    throw invalid('its signature does not match (altered, or from another cluster)');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    throw invalid('its payload is not JSON');
  }
  const parsed = payloadSchema.safeParse(json);
  if (!parsed.success) throw invalid('its payload is malformed');
  const link = parsed.data;
  if (link.purpose !== UPLOAD_PURPOSE) throw invalid(`it is for "${link.purpose}", not uploads`);
  if (now >= link.exp * 1000)
    throw new ForbiddenError(
      `this upload link expired at ${new Date(link.exp * 1000).toISOString()}`,
      'UPLOAD_LINK_EXPIRED',
    );
  return { ...link, purpose: UPLOAD_PURPOSE };
}

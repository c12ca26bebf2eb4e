/**
 * UPLOAD_TOKEN: when set, whatever writes or burns CPU (uploads, /process,
 * /batch) needs `Authorization: Bearer <token>`. Checked before the body is
 * read, so a stranger cannot even stream bytes into the spool. A signed
 * upload link (`?link=`) takes the token's place for uploads only.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { UnauthorizedError } from '../shared/errors.js';
import type { UploadLinks } from './upload-links.js';

/** Hashing both sides first gives equal lengths, so timingSafeEqual never leaks the token's length. */
function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Whether an Authorization header carries `token` as a Bearer credential, compared in constant time. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = match?.[1] ?? '';
  // Always compare, even with nothing given, so a missing header costs the same as a wrong one.
  const same = timingSafeEqual(digest(given), digest(token));
  return same && given.length > 0;
}

/**
 * Middleware of the upload routes: a `?link=<token>` query parameter makes
 * the upload go through that signed upload link (403 when the link is not
 * valid), which takes the place of the Bearer token; otherwise as
 * requireUploadToken. A request through a link that does not end in 201
 * gives back the file slots it took (see upload-links.ts).
 */
export function requireUploadAuth(
  token: string | undefined,
  links: UploadLinks,
): MiddlewareHandler {
  const bearer = requireUploadToken(token);
  return async (c, next) => {
    const linkToken = c.req.query('link');
    if (linkToken === undefined) return bearer(c, next);
    const upload = links.open(linkToken);
    c.set('uploadLink', upload);
    await next();
    // Errors were already turned into the response: anything but a 201 stored nothing.
    if (c.res.status !== 201) await upload.giveBack();
  };
}

/** Middleware: 401 UNAUTHORIZED (JSON, WWW-Authenticate: Bearer) unless the token matches; a no-op when unset. */
export function requireUploadToken(token: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (token !== undefined && !bearerMatches(c.req.header('authorization'), token)) {
      c.header('www-authenticate', 'Bearer realm="trove uploads"');
      throw new UnauthorizedError(
        'uploads on this server need an upload token: Authorization: Bearer <UPLOAD_TOKEN>',
      );
    }
    await next();
  };
}

/**
 * UPLOAD_TOKEN: when set, whatever writes or burns CPU (uploads, /process,
 * /batch) needs `Authorization: Bearer <token>`. Checked before the body is
 * read, so a stranger cannot even stream bytes into the spool.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { UnauthorizedError } from '../shared/errors.js';

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

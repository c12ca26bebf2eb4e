/**
 * Bearer tokens of the gateway (UPLOAD_TOKEN, ADMIN_TOKEN, METRICS_TOKEN):
 * one constant-time comparison and one middleware, so every token is checked
 * the same way.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { UnauthorizedError } from '../../shared/errors.js';

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
 * Middleware: 401 UNAUTHORIZED (JSON, `WWW-Authenticate: Bearer realm=…`)
 * with `message` unless the request carries `token`; a no-op when the token
 * is unset (the routes are open).
 */
export function requireBearer(
  token: string | undefined,
  realm: string,
  message: string,
): MiddlewareHandler {
  return async (c, next) => {
    if (token !== undefined && !bearerMatches(c.req.header('authorization'), token)) {
      c.header('www-authenticate', `Bearer realm="${realm}"`);
      throw new UnauthorizedError(message);
    }
    await next();
  };
}

/**
 * UPLOAD_TOKEN: when set, whatever writes or burns CPU (uploads, /process,
 * /batch) needs `Authorization: Bearer <token>`. Checked before the body is
 * read, so a stranger cannot even stream bytes into the spool. A signed
 * upload link (`?link=`) takes the token's place for uploads only.
 */
import type { MiddlewareHandler } from 'hono';
import { requireBearer } from '../http/bearer-auth.js';
import type { UploadLinks } from './upload-links.js';

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
  o: { giveBack: boolean } = { giveBack: true },
): MiddlewareHandler {
  const bearer = requireUploadToken(token);
  return async (c, next) => {
    const linkToken = c.req.query('link');
    if (linkToken === undefined) return bearer(c, next);
    const upload = links.open(linkToken);
    c.set('uploadLink', upload);
    await next();
    // Errors were already turned into the response: anything but a 201 stored nothing.
    // (A handler that sends its answer itself gives back instead: `giveBack: false`.)
    if (o.giveBack && c.res.status !== 201) await upload.giveBack();
  };
}

/** Middleware: 401 UNAUTHORIZED (JSON, WWW-Authenticate: Bearer) unless the token matches; a no-op when unset. */
export function requireUploadToken(token: string | undefined): MiddlewareHandler {
  return requireBearer(
    token,
    'trove uploads',
    'uploads on this server need an upload token: Authorization: Bearer <UPLOAD_TOKEN>',
  );
}

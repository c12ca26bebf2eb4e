/**
 * The browser page's static files (gateway/public/, copied to
 * dist/gateway/public/ by `npm run build`), plus the few files of npm
 * packages it loads, read once at start and served from memory: a fixed set
 * of names, so no path from a request ever reaches the file system.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import type { Context } from 'hono';
import { NotFoundError } from '../../shared/errors.js';
import { PAGE_HEADERS } from './html.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The gateway's folder: gateway/public from source, dist/gateway/public when built. */
export const PUBLIC_DIR = join(import.meta.dirname, '..', 'public');

/**
 * Files of npm packages the page loads, by the name served under /static/.
 * Resolved in node_modules as `import` would (it sits beside gateway/ and
 * dist/ alike, and in the Docker image), never copied into the repository:
 * an `npm update` updates the page too.
 */
export const VENDORED: Record<string, string> = {
  // tus-js-client's browser build (a UMD script defining the global `tus`): resumable uploads.
  'tus.min.js': 'tus-js-client/dist/tus.min.js',
  // The script names its source map; browser devtools ask for it.
  'tus.min.js.map': 'tus-js-client/dist/tus.min.js.map',
};

function asset(body: Buffer, type: string): Asset {
  const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
  return { body, type, etag };
}

/** Every file of `dir` of a known type, and the `vendored` ones (a missing package fails the start). */
export function loadAssets(dir = PUBLIC_DIR, vendored = VENDORED): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) assets.set(name, asset(readFileSync(join(dir, name)), type));
  }
  const require = createRequire(import.meta.url);
  for (const [name, specifier] of Object.entries(vendored)) {
    const type = TYPES[extname(name)];
    if (!type) throw new Error(`no content type for the static file ${name}`);
    assets.set(name, asset(readFileSync(require.resolve(specifier)), type));
  }
  return assets;
}

/** Serves `name` from `assets`; revalidated on every load (no-cache) so an upgrade shows at once. */
export function serveAsset(c: Context, assets: Map<string, Asset>, name: string | undefined) {
  const asset = name === undefined ? undefined : assets.get(name);
  if (!asset) throw new NotFoundError(`no static file ${name ?? ''}`);
  const headers: Record<string, string> = {
    ...(asset.type.startsWith('text/html') ? PAGE_HEADERS : {}),
    'content-type': asset.type,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    etag: asset.etag,
  };
  if (c.req.header('if-none-match') === asset.etag) return c.body(null, 304, headers);
  return c.body(new Uint8Array(asset.body), 200, headers);
}

/**
 * The browser page's static files (gateway/public/, copied to
 * dist/gateway/public/ by `npm run build`), read once at start and served
 * from memory: a fixed set of names, so no path from a request ever reaches
 * the file system.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { Context } from 'hono';
import { NotFoundError } from '../../shared/errors.js';
import { PAGE_HEADERS } from './html.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
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

export function loadAssets(dir = PUBLIC_DIR): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(dir, name));
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
    assets.set(name, { body, type, etag });
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

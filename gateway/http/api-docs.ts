/**
 * GET /openapi.json (the document openapi.ts generates) and GET /docs, a
 * Swagger UI page for it that works offline: its script and stylesheet come
 * from the swagger-ui-dist package in node_modules (beside dist/ in the repo
 * and in the Docker image), read once and served from memory under /docs/,
 * and its CSP lets it load nothing from anywhere but this gateway.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context, Hono } from 'hono';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { NotFoundError } from '../../shared/errors.js';
import type { ApiDocDeps } from './openapi.js';

/** Only this gateway's own files; blob: and data: for images Swagger UI shows (icons, image answers of "Try it out"). */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Starts Swagger UI on the page (a file, not an inline script, so the CSP needs no exception). */
const INIT_SCRIPT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  // Swagger UI would otherwise send the document to validator.swagger.io.
  validatorUrl: null,
});
`;

interface DocsAsset {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  etag: string;
}

function asset(body: Uint8Array<ArrayBuffer>, type: string): DocsAsset {
  const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
  return { body, type, etag };
}

/** swagger-ui-dist's directory, found the way `import` finds packages: from this file up to node_modules. */
function swaggerUiDir(): string {
  return dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

/** The page's files by the name they are served under (/docs/<name>). */
function loadDocsAssets(): Map<string, DocsAsset> {
  const dir = swaggerUiDir();
  const read = (name: string) => new Uint8Array(readFileSync(join(dir, name)));
  return new Map([
    ['swagger-ui.css', asset(read('swagger-ui.css'), 'text/css; charset=utf-8')],
    ['swagger-ui-bundle.js', asset(read('swagger-ui-bundle.js'), 'text/javascript; charset=utf-8')],
    ['init.js', asset(new TextEncoder().encode(INIT_SCRIPT), 'text/javascript; charset=utf-8')],
    ['favicon-32x32.png', asset(read('favicon-32x32.png'), 'image/png')],
  ]);
}

/** The HTML of /docs; `?v=<etag>` changes with the files, so they can be cached for a day. */
function docsPage(assets: Map<string, DocsAsset>): string {
  const url = (name: string) => `/docs/${name}?v=${assets.get(name)!.etag.slice(1, 13)}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trove API</title>
<link rel="icon" href="${url('favicon-32x32.png')}">
<link rel="stylesheet" href="${url('swagger-ui.css')}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${url('swagger-ui-bundle.js')}"></script>
<script src="${url('init.js')}"></script>
</body>
</html>
`;
}

function serveDocsAsset(c: Context, assets: Map<string, DocsAsset>, name: string) {
  const found = assets.get(name);
  if (!found) throw new NotFoundError(`no file /docs/${name}`);
  const headers = {
    'content-type': found.type,
    'cache-control': 'public, max-age=86400',
    'x-content-type-options': 'nosniff',
    etag: found.etag,
  };
  if (c.req.header('if-none-match') === found.etag) return c.body(null, 304, headers);
  return c.body(found.body, 200, headers);
}

/** Mounts /openapi.json, /docs and /docs/<asset>; everything is built on first use, then kept. */
export function addApiDocs(app: Hono<{ Bindings: HttpBindings }>, deps: ApiDocDeps): void {
  let document: string | undefined;
  let assets: Map<string, DocsAsset> | undefined;
  let page: string | undefined;
  const docsAssets = () => (assets ??= loadDocsAssets());

  app.get('/openapi.json', async (c) => {
    // Imported here: @hono/zod-openapi and the schemas stay out of memory until someone asks.
    document ??= JSON.stringify((await import('./openapi.js')).openApiDocument(deps));
    return c.body(document, 200, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    });
  });
  app.get('/docs', (c) => {
    page ??= docsPage(docsAssets());
    return c.html(page, 200, {
      'content-security-policy': DOCS_CSP,
      'cache-control': 'no-cache',
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
    });
  });
  app.get('/docs/:asset', (c) => serveDocsAsset(c, docsAssets(), c.req.param('asset')));
}

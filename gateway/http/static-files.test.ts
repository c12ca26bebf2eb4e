import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAssets, serveAsset } from './static-files.js';

const dir = mkdtempSync(join(tmpdir(), 'trove-static-'));
writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
writeFileSync(join(dir, 'app.js'), "'use strict';");
writeFileSync(join(dir, 'notes.txt'), 'not served');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function appOf(assets: ReturnType<typeof loadAssets>) {
  const app = new Hono();
  app.get('/static/:name', (c) => serveAsset(c, assets, c.req.param('name')));
  app.onError((err, c) => c.text(err.message, 404));
  return app;
}

describe('loadAssets', () => {
  it("serves the folder's known types and the page's files of npm packages", async () => {
    const app = appOf(loadAssets(dir));
    const tus = await app.request('/static/tus.min.js');
    expect(tus.status).toBe(200);
    expect(tus.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    // The UMD build of tus-js-client: it defines the global the page uses.
    expect(await tus.text()).toMatch(/\.tus\s*=/);
    expect((await app.request('/static/tus.min.js.map')).status).toBe(200);
    expect((await app.request('/static/app.js')).status).toBe(200);
    expect((await app.request('/static/notes.txt')).status).toBe(404);
    // Nothing else of node_modules is reachable.
    expect((await app.request('/static/tus.js')).status).toBe(404);
  });

  it('revalidates with the etag', async () => {
    const app = appOf(loadAssets(dir));
    const first = await app.request('/static/tus.min.js');
    const etag = first.headers.get('etag')!;
    const again = await app.request('/static/tus.min.js', { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  it('fails at start when a package is missing', () => {
    expect(() => loadAssets(dir, { 'x.js': 'no-such-package-here/x.js' })).toThrow(
      /no-such-package-here/,
    );
  });
});

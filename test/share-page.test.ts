/**
 * The share page (GET /s/:id) against real processes: it shows the file and
 * never takes a download, however often it (or its preview image) is fetched;
 * its 404/410 answers are HTML; `share_url` follows PUBLIC_URL and, only with
 * TRUST_PROXY on, X-Forwarded-Proto/Host.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { fixture, queryDb, startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;
let publicGw: string;
let proxiedGw: string;

beforeAll(async () => {
  cluster = await startCluster({ worker: true });
  publicGw = await cluster.startGateway('gw-public', { PUBLIC_URL: 'https://trove.example.org/' });
  proxiedGw = await cluster.startGateway('gw-proxied', { TRUST_PROXY: 'true' });
});
afterAll(async () => {
  await cluster?.stop();
});

function showLogsOnFailure() {
  onTestFailed(() => console.log(cluster.logTail()));
}

interface Uploaded {
  id: string;
  url: string;
  share_url: string;
  delete_token: string;
}

let seq = 0;
async function upload(
  opts: { base?: string; name?: string; query?: string; headers?: Record<string, string> } = {},
): Promise<Uploaded> {
  const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`share-${seq++}-${Date.now()}`)]);
  const form = new FormData();
  form.append('file', new Blob([data]), opts.name ?? 'photo.jpg');
  const res = await fetch(`${opts.base ?? cluster.gatewayUrl}/upload?${opts.query ?? ''}`, {
    method: 'POST',
    body: form,
    headers: opts.headers,
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Uploaded;
}

const usedInDb = (id: string) =>
  queryDb<{ n: number }>(cluster, `SELECT downloads_used AS n FROM files WHERE id = '${id}'`)[0]!.n;

async function sharePage(url: string, headers?: Record<string, string>) {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type'), html: await res.text() };
}

function meta(html: string, property: string): string | undefined {
  const m = new RegExp(`<meta property="${property}" content="([^"]*)">`).exec(html);
  return m?.[1]?.replace(/&amp;/g, '&');
}

describe('share page', () => {
  it('shows the file, escaped, and never takes a download (nor does its preview image)', async () => {
    showLogsOnFailure();
    const name = "<img src=x onerror='alert(1)'> & co.jpg";
    const file = await upload({ name, query: 'max_downloads=3' });
    expect(file.share_url).toBe(`${cluster.gatewayUrl}/s/${file.id}`);

    // Link-preview bots: many fetches, HEAD too; then wait for the thumbnail and fetch og:image.
    for (let i = 0; i < 5; i++) expect((await sharePage(file.share_url)).status).toBe(200);
    expect((await fetch(file.share_url, { method: 'HEAD' })).status).toBe(200);
    const page = await waitFor('og:image on the share page', async () => {
      const p = await sharePage(file.share_url);
      return meta(p.html, 'og:image') ? p : undefined;
    });
    expect(page.type).toMatch(/^text\/html/);
    expect(page.html).not.toContain('<img src=x');
    expect(page.html).toContain('&lt;img src=x onerror=&#39;alert(1)&#39;&gt; &amp; co.jpg');
    expect(meta(page.html, 'og:title')).toBe(
      '&lt;img src=x onerror=&#39;alert(1)&#39;&gt; & co.jpg',
    );
    expect(meta(page.html, 'og:description')).toMatch(/3 of 3 downloads left · expires in/);
    const image = meta(page.html, 'og:image')!;
    expect(image).toBe(`${cluster.gatewayUrl}/files/${file.id}/thumbnail`);
    const thumb = await fetch(image);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/webp');
    await thumb.arrayBuffer();
    expect(page.html).toContain(`href="/download/${file.id}"`);

    const meta1 = (await (await fetch(`${cluster.gatewayUrl}/files/${file.id}`)).json()) as any;
    expect(meta1).toMatchObject({ downloads_used: 0, downloads_left: 3 });
    expect(usedInDb(file.id)).toBe(0);

    // The Download button's link does count, and the page then says so.
    const dl = await fetch(`${cluster.gatewayUrl}/download/${file.id}`);
    expect(dl.status).toBe(200);
    await dl.arrayBuffer();
    expect((await sharePage(file.share_url)).html).toContain('2 of 3 downloads left');
    expect(usedInDb(file.id)).toBe(1);
  });

  it('answers HTML 404 for unknown or malformed ids and HTML 410 for deleted, expired and used-up links', async () => {
    showLogsOnFailure();
    for (const id of ['AAAAAAAAAAAAAAAAAAAAAA', 'not-an-id', '..%2F..%2Fetc']) {
      const p = await sharePage(`${cluster.gatewayUrl}/s/${id}`);
      expect(p.status).toBe(404);
      expect(p.type).toMatch(/^text\/html/);
      expect(p.html).toContain('No such link');
    }

    const deleted = await upload();
    const del = await fetch(`${cluster.gatewayUrl}/files/${deleted.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': deleted.delete_token },
    });
    expect(del.status).toBe(204);
    const gone = await sharePage(deleted.share_url);
    expect(gone.status).toBe(410);
    expect(gone.type).toMatch(/^text\/html/);
    expect(gone.html).toContain('This file was deleted');

    const expiring = await upload({ query: 'ttl=1' });
    await new Promise((r) => setTimeout(r, 1200));
    const expired = await sharePage(expiring.share_url);
    expect(expired.status).toBe(410);
    expect(expired.html).toContain('This link has expired');

    const once = await upload({ query: 'max_downloads=1' });
    await (await fetch(once.url)).arrayBuffer();
    const used = await sharePage(once.share_url);
    expect(used.status).toBe(410);
    expect(used.html).toContain('No downloads left');
  });

  it('builds share_url on PUBLIC_URL, like url', async () => {
    showLogsOnFailure();
    const file = await upload({
      base: publicGw,
      headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' },
    });
    expect(file.share_url).toBe(`https://trove.example.org/s/${file.id}`);
    expect(file.url).toBe(`https://trove.example.org/download/${file.id}`);
    const page = await sharePage(`${publicGw}/s/${file.id}`);
    expect(meta(page.html, 'og:url')).toBe(file.share_url);
  });

  it('follows X-Forwarded-Proto/Host with TRUST_PROXY on, and ignores them when off', async () => {
    showLogsOnFailure();
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'abc.ngrok.app' };
    const trusted = await upload({ base: proxiedGw, headers: forwarded });
    expect(trusted.share_url).toBe(`https://abc.ngrok.app/s/${trusted.id}`);
    expect(trusted.url).toBe(`https://abc.ngrok.app/download/${trusted.id}`);
    const page = await sharePage(`${proxiedGw}/s/${trusted.id}`, forwarded);
    expect(meta(page.html, 'og:url')).toBe(trusted.share_url);

    const ignored = await upload({ headers: forwarded });
    expect(ignored.share_url).toBe(`${cluster.gatewayUrl}/s/${ignored.id}`);
    const view = (await (
      await fetch(`${cluster.gatewayUrl}/files/${ignored.id}`, { headers: forwarded })
    ).json()) as Uploaded;
    expect(view.share_url).toBe(ignored.share_url);
  });
});

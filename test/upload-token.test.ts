/**
 * UPLOAD_TOKEN against a real gateway: uploads (multipart and raw), /process
 * and /batch need `Authorization: Bearer <token>`, answered 401 JSON before
 * any body is read; downloads, metadata and the pages stay open.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { fixture, startCluster, type Cluster } from './harness.js';

const TOKEN = 'correct-horse-battery-staple';
let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ env: { UPLOAD_TOKEN: TOKEN } });
});
afterAll(async () => {
  await cluster?.stop();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function multipart(): FormData {
  const form = new FormData();
  form.append('file', new Blob([fixture('photo.jpg')]), 'photo.jpg');
  return form;
}

async function expect401(res: Response) {
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  expect(((await res.json()) as any).error.code).toBe('UNAUTHORIZED');
}

describe('UPLOAD_TOKEN', () => {
  it('refuses uploads without the token or with a wrong one, and takes them with it', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const url = cluster.gatewayUrl;
    await expect401(await fetch(`${url}/upload`, { method: 'POST', body: multipart() }));
    await expect401(
      await fetch(`${url}/upload`, {
        method: 'POST',
        body: multipart(),
        headers: bearer('correct-horse-battery-stapl'),
      }),
    );
    await expect401(
      await fetch(`${url}/upload`, {
        method: 'POST',
        body: multipart(),
        headers: { authorization: TOKEN },
      }),
    );
    await expect401(
      await fetch(`${url}/upload/p.jpg`, { method: 'PUT', body: fixture('photo.jpg') }),
    );
    await expect401(await fetch(`${url}/upload/`, { method: 'PUT', body: fixture('photo.jpg') }));

    const ok = await fetch(`${url}/upload`, {
      method: 'POST',
      body: multipart(),
      headers: bearer(TOKEN),
    });
    expect(ok.status).toBe(201);
    const file = (await ok.json()) as { id: string; url: string; share_url: string };
    const raw = await fetch(`${url}/upload/p.jpg`, {
      method: 'PUT',
      body: fixture('photo.jpg'),
      headers: bearer(TOKEN),
    });
    expect(raw.status).toBe(201);

    // Whoever has the link needs no token.
    const dl = await fetch(file.url);
    expect(dl.status).toBe(200);
    await dl.arrayBuffer();
    expect((await fetch(`${url}/files/${file.id}`)).status).toBe(200);
    expect((await fetch(file.share_url)).status).toBe(200);
    expect((await fetch(`${url}/`)).status).toBe(200);
    expect(await (await fetch(`${url}/api/config`)).json()).toMatchObject({
      upload_token_required: true,
    });
  });

  it('guards /process and /batch too (they burn CPU for whoever calls them)', async () => {
    const url = cluster.gatewayUrl;
    await expect401(
      await fetch(`${url}/process?op=thumbnail`, { method: 'POST', body: multipart() }),
    );
    await expect401(
      await fetch(`${url}/batch?op=thumbnail`, { method: 'POST', body: multipart() }),
    );
    const ok = await fetch(`${url}/process?op=thumbnail`, {
      method: 'POST',
      body: multipart(),
      headers: bearer(TOKEN),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('image/webp');
    await ok.arrayBuffer();
  });
});

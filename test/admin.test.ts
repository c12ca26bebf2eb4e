/**
 * The admin API and signed upload links against a real cluster (three nodes,
 * a worker, two gateways: one with ADMIN_TOKEN, one without).
 */
import { readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { adminRoutes, type AdminDeps } from '../gateway/http/admin.js';
import { topologyNames, workQueues } from '../shared/jobs.js';
import {
  filesUnder,
  fixture,
  queryDb,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';

const ADMIN = 'admin-token-0123456789abcdef';
const UPLOAD = 'upload-token-for-strangers';
let cluster: Cluster;
/** A gateway of the same cluster without ADMIN_TOKEN. */
let noAdmin: string;

beforeAll(async () => {
  cluster = await startCluster({
    worker: true,
    env: { ADMIN_TOKEN: ADMIN, UPLOAD_TOKEN: UPLOAD },
  });
  noAdmin = await cluster.startGateway('gateway2', { ADMIN_TOKEN: '' });
});
afterAll(async () => {
  await cluster?.stop();
});
const showLogs = () => onTestFailed(() => console.log(cluster.logTail(60)));

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function admin(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${cluster.gatewayUrl}/admin${path}`, {
    method,
    headers: {
      ...bearer(ADMIN),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function json(res: Response, status: number): Promise<any> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return text ? JSON.parse(text) : undefined;
}

let seq = 0;
async function upload(query = '', headers: Record<string, string> = bearer(UPLOAD)) {
  const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`admin-${seq++}-${Date.now()}`)]);
  const res = await fetch(`${cluster.gatewayUrl}/upload/a.jpg${query}`, {
    method: 'PUT',
    body: data,
    headers,
  });
  return { res, data };
}

async function uploaded(query = ''): Promise<{ id: string; sha256: string; expires_at: string }> {
  const { res, data } = await upload(query);
  const body = await json(res, 201);
  return { ...body, sha256: sha256(data) };
}

/**
 * A raw upload (PUT) that sends its headers and the first KiB of a distinct
 * image, then the rest only once `release` settles; resolves with the answer,
 * which may come before the body is done (a refusal does not wait for it).
 */
function heldUpload(
  url: string,
  n: number,
  release: Promise<void>,
): Promise<{ status: number; body: string }> {
  const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`held-${n}-${Date.now()}`)]);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'PUT',
      headers: { 'content-length': String(data.length) },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() });
        req.destroy(); // a refused request's body is not wanted
      });
    });
    req.write(data.subarray(0, 1024));
    void release.then(() => {
      if (!req.destroyed) req.end(data.subarray(1024));
    });
  });
}

describe('admin API auth', () => {
  // Every route of the admin sub-app, as registered: a route added later is covered too.
  const routes = adminRoutes({} as AdminDeps)
    .routes.filter((r) => r.method !== 'ALL')
    .map((r) => ({ method: r.method, path: r.path.replace(':id', 'AAAAAAAAAAAAAAAAAAAAAA') }));

  it('covers every admin route', () => {
    expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(
      expect.arrayContaining([
        'GET /files',
        'DELETE /files/AAAAAAAAAAAAAAAAAAAAAA',
        'POST /repairs',
        'POST /scrub',
        'GET /queues',
        'POST /upload-links',
      ]),
    );
  });

  it('answers 401 without the token, with a wrong one, and on a gateway without ADMIN_TOKEN', async () => {
    showLogs();
    const wrong = [
      {},
      bearer('admin-token-0123456789abcdeX'),
      bearer(`${ADMIN}x`),
      { authorization: ADMIN },
      bearer(UPLOAD),
    ];
    for (const { method, path } of [
      ...routes,
      { method: 'GET', path: '' },
      { method: 'GET', path: '/nope' },
    ]) {
      for (const headers of wrong) {
        const res = await fetch(`${cluster.gatewayUrl}/admin${path}`, {
          method,
          headers: { ...headers, 'content-type': 'application/json' },
          body: method === 'POST' ? '{}' : undefined,
        });
        const body = await json(res, 401);
        expect(body.error.code, `${method} ${path}`).toBe('UNAUTHORIZED');
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      }
      const off = await fetch(`${noAdmin}/admin${path}`, {
        method,
        headers: { ...bearer(ADMIN), 'content-type': 'application/json' },
        body: method === 'POST' ? '{}' : undefined,
      });
      const body = await json(off, 401);
      expect(body.error.code).toBe('ADMIN_API_DISABLED');
      expect(body.error.message).toMatch(/ADMIN_TOKEN/);
    }
    // With the token, an unknown admin path is a plain 404.
    expect((await admin('GET', '/nope')).status).toBe(404);
  });
});

describe('admin API', () => {
  it('lists files newest first, pages with a cursor, filters by status and expiry', async () => {
    showLogs();
    const soon: string[] = [];
    const later: string[] = [];
    for (let i = 0; i < 3; i++) soon.push((await uploaded('?ttl=60')).id);
    for (let i = 0; i < 2; i++) later.push((await uploaded('?ttl=2h')).id);
    const mine = new Set([...soon, ...later]);

    const seen: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const body: any = await json(
        await admin('GET', `/files?limit=2${cursor ? `&cursor=${cursor}` : ''}`),
        200,
      );
      expect(body.files.length).toBeLessThanOrEqual(2);
      seen.push(...body.files);
      cursor = body.next_cursor;
      pages++;
    } while (cursor && pages < 100);
    expect(cursor).toBeNull();
    const ids = seen.map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length); // no file twice
    const ours = ids.filter((id) => mine.has(id));
    expect(ours).toEqual([...later].reverse().concat([...soon].reverse()));
    const created = seen.map((f) => Date.parse(f.created_at));
    expect(created).toEqual([...created].sort((a, b) => b - a));
    expect(seen.find((f) => f.id === soon[0])).toMatchObject({
      status: 'active',
      content_type: 'image/jpeg',
      max_downloads: 3,
      downloads_left: 3,
      deleted_at: null,
    });

    const expiring = await json(await admin('GET', '/files?expiring_within=120&limit=500'), 200);
    const expiringIds = expiring.files.map((f: any) => f.id);
    expect(expiringIds).toEqual(expect.arrayContaining(soon));
    for (const id of later) expect(expiringIds).not.toContain(id);
    for (const f of expiring.files)
      expect(Date.parse(f.expires_at) - Date.now()).toBeLessThanOrEqual(120_000);

    const active = await json(await admin('GET', '/files?status=active&limit=500'), 200);
    expect(active.files.map((f: any) => f.id)).toEqual(expect.arrayContaining([...mine]));
    expect(active.files.every((f: any) => f.status === 'active')).toBe(true);

    for (const bad of [
      'status=gone',
      'limit=0',
      'limit=abc',
      'expiring_within=-5',
      'cursor=bm9wZQ',
    ])
      expect((await json(await admin('GET', `/files?${bad}`), 400)).error.code).toMatch(
        /INVALID_PARAMETER|INVALID_CURSOR/,
      );
  });

  it('force-deletes a file without its delete token: downloads answer 410', async () => {
    showLogs();
    const file = await uploaded();
    expect((await fetch(`${cluster.gatewayUrl}/download/${file.id}`)).status).toBe(200);
    expect((await admin('DELETE', `/files/${file.id}`)).status).toBe(204);
    const gone = await fetch(`${cluster.gatewayUrl}/download/${file.id}`);
    expect((await json(gone, 410)).error.code).toBe('FILE_DELETED');
    expect((await admin('DELETE', `/files/${file.id}`)).status).toBe(204); // idempotent
    const deleted = await json(await admin('GET', '/files?status=deleted&limit=500'), 200);
    expect(deleted.files.map((f: any) => f.id)).toContain(file.id);
    expect(
      (await json(await admin('DELETE', '/files/AAAAAAAAAAAAAAAAAAAAAA'), 404)).error.code,
    ).toBe('FILE_NOT_FOUND');
    // The worker removes its blobs from every node.
    await waitFor('blobs removed', async () => {
      for (const n of cluster.nodes)
        if ((await filesUnder(join(n.dataDir, 'blobs'))).some((f) => f.includes(`${file.id}@`)))
          return false;
      return true;
    });
  });

  it('reports the depth of every work queue, the dead letters and the delayed jobs', async () => {
    await uploaded('?ttl=2h'); // its deletion waits in the delay ladder
    const q = await json(await admin('GET', '/queues'), 200);
    const p = cluster.clusterName;
    expect(q.connected).toBe(true);
    // Every work queue the cluster declares (shared/jobs.ts), each with a number.
    const names = topologyNames(p);
    expect(Object.keys(q.work).sort()).toEqual(workQueues(names).sort());
    expect(Object.keys(q.work)).toContain(`${p}.files.delete`);
    for (const depth of Object.values(q.work)) expect(depth).toEqual(expect.any(Number));
    expect(q.dead_letters).toEqual({ [`${p}.dead-letters`]: expect.any(Number) });
    expect(q.delayed).toBeGreaterThanOrEqual(1);
  });

  /** The blob file of `key` on a node's disk. */
  async function blobPath(nodeIndex: number, key: string): Promise<string | undefined> {
    const dir = join(cluster.nodes[nodeIndex]!.dataDir, 'blobs');
    const path = (await filesUnder(dir)).find((f) => f.split('/').pop()!.startsWith(`${key}@`));
    return path && join(dir, path);
  }

  async function restored(nodeIndex: number, key: string, sha: string) {
    await waitFor(
      `${key} back on node${nodeIndex + 1}`,
      async () => {
        const path = await blobPath(nodeIndex, key);
        return path !== undefined && sha256(await readFile(path)) === sha;
      },
      30_000,
    );
  }

  it('repairs one file whose replica was removed from a node’s disk', async () => {
    showLogs();
    const file = await uploaded('?max_downloads=0');
    const path = (await blobPath(1, file.id))!;
    await rm(path);
    const body = await json(await admin('POST', '/repairs', { file_id: file.id }), 202);
    expect(body).toMatchObject({ file_id: file.id, repairs_queued: 1 });
    expect(body.replicas).toEqual(
      expect.arrayContaining([
        { key: file.id, node: 'node2', state: 'missing', reachable: true },
        { key: file.id, node: 'node1', state: 'ok', reachable: true },
      ]),
    );
    await restored(1, file.id, file.sha256);
    expect((await json(await admin('POST', '/repairs', { file_id: 'nope' }), 400)).error.code).toBe(
      'INVALID_PARAMETER',
    );
    // Admin bodies are small JSON; a big one is refused before it is read whole.
    const big = await admin('POST', '/repairs', { file_id: 'x'.repeat(20_000) });
    expect((await json(big, 413)).error.code).toBe('PAYLOAD_TOO_LARGE');
    expect((await json(await admin('POST', '/repairs', { file: 'x' }), 400)).error.code).toBe(
      'INVALID_PARAMETER',
    );
    expect((await json(await admin('POST', '/repairs', '{'.repeat(3)), 400)).error.code).toBe(
      'INVALID_PARAMETER',
    );
  });

  it('repairs everything: anti-entropy finds a replica removed from disk', async () => {
    showLogs();
    const file = await uploaded('?max_downloads=0');
    await rm((await blobPath(2, file.id))!);
    const body = await json(await admin('POST', '/repairs'), 202);
    expect(body).toMatchObject({ node_checks: 3, repairs_queued: expect.any(Number) });
    await restored(2, file.id, file.sha256);
  });

  it('starts a scrub pass on one node or all of them', async () => {
    showLogs();
    await uploaded();
    const health = async (i: number) =>
      (await (await fetch(`${cluster.nodes[i]!.url}/health`)).json()) as any;
    // SCRUB_INTERVAL_SECONDS is a day: no pass has run on its own.
    expect((await health(0)).scrub.last_finished).toBeNull();
    const one = await json(await admin('POST', '/scrub', { node: 'node1' }), 202);
    expect(one.nodes).toEqual([
      expect.objectContaining({
        node: 'node1',
        started: true,
        scrub: expect.objectContaining({ running: true }),
      }),
    ]);
    await waitFor('node1 scrub pass', async () => (await health(0)).scrub.last_finished !== null);
    expect((await health(0)).scrub.blobs_checked).toBeGreaterThan(0);
    expect((await health(1)).scrub.last_finished).toBeNull();

    const all = await json(await admin('POST', '/scrub'), 202);
    expect(all.nodes.map((n: any) => n.node)).toEqual(['node1', 'node2', 'node3']);
    for (const i of [1, 2])
      await waitFor(
        `node${i + 1} scrub pass`,
        async () => (await health(i)).scrub.last_finished !== null,
      );
    expect((await json(await admin('POST', '/scrub', { node: 'node9' }), 404)).error.code).toBe(
      'NODE_NOT_FOUND',
    );
    // The node's own endpoint needs the cluster secret.
    expect((await fetch(`${cluster.nodes[0]!.url}/scrub`, { method: 'POST' })).status).toBe(401);
  });
});

describe('signed upload links', () => {
  async function mint(req: object, base = cluster.gatewayUrl) {
    const res = await fetch(`${base}/admin/upload-links`, {
      method: 'POST',
      headers: { ...bearer(ADMIN), 'content-type': 'application/json' },
      body: JSON.stringify(req),
    });
    return json(res, 201);
  }

  function form(n = 1): FormData {
    const f = new FormData();
    for (let i = 0; i < n; i++)
      f.append('file', new Blob([fixture('photo.jpg'), `link-${seq++}`]), `p${i}.jpg`);
    return f;
  }

  it('uploads max_files files without any token, then answers 403 used up', async () => {
    showLogs();
    const link = await mint({ expires_in: 600, max_files: 2, max_downloads: 1, ttl_seconds: 300 });
    expect(link).toMatchObject({ max_files: 2, max_downloads: 1, ttl_seconds: 300 });
    expect(link.url).toBe(`${cluster.gatewayUrl}/u/${link.token}`);
    expect(Date.parse(link.expires_at) - Date.now()).toBeGreaterThan(590_000);

    // No Authorization header, though UPLOAD_TOKEN is set: multipart, then raw on the other gateway.
    const first = await fetch(link.upload_url, { method: 'POST', body: form() });
    const a = await json(first, 201);
    const second = await fetch(`${noAdmin}/upload/raw.jpg?link=${link.token}&max_downloads=9`, {
      method: 'PUT',
      body: fixture('photo.jpg'),
    });
    const b = await json(second, 201);
    const third = await fetch(link.upload_url, { method: 'POST', body: form() });
    expect((await json(third, 403)).error.code).toBe('UPLOAD_LINK_USED_UP');

    // The link's options win over the uploader's: one download, five minutes.
    for (const f of [a, b]) {
      expect(f.max_downloads).toBe(1);
      expect(Date.parse(f.expires_at) - Date.now()).toBeLessThanOrEqual(300_000);
      expect(Date.parse(f.expires_at) - Date.now()).toBeGreaterThan(240_000);
    }
    const dl = await fetch(a.url);
    expect(dl.status).toBe(200);
    await dl.arrayBuffer();
    expect((await json(await fetch(a.url), 410)).error.code).toBe('DOWNLOAD_LIMIT_REACHED');

    // A link is for uploads only: not /process, not /batch, not the admin API.
    expect(
      (
        await fetch(`${cluster.gatewayUrl}/process?op=thumbnail&link=${link.token}`, {
          method: 'POST',
          body: form(),
        })
      ).status,
    ).toBe(401);
    expect((await fetch(`${cluster.gatewayUrl}/admin/files?link=${link.token}`)).status).toBe(401);
  });

  it('gives a slot back when the upload fails, and counts a request of several files as several', async () => {
    showLogs();
    const link = await mint({ expires_in: 600, max_files: 2 });
    // Not an image: 415, stores nothing, gives its slot back.
    const bad = await fetch(`${cluster.gatewayUrl}/upload/x.txt?link=${link.token}`, {
      method: 'PUT',
      body: 'just text, not an image at all',
    });
    expect((await json(bad, 415)).error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    // Three files in one request: more than the link has left, so none is stored.
    const three = await fetch(link.upload_url, { method: 'POST', body: form(3) });
    expect((await json(three, 403)).error.code).toBe('UPLOAD_LINK_USED_UP');
    const two = await json(await fetch(link.upload_url, { method: 'POST', body: form(2) }), 201);
    expect(two.files).toHaveLength(2);
    expect(
      (await json(await fetch(link.upload_url, { method: 'POST', body: form() }), 403)).error.code,
    ).toBe('UPLOAD_LINK_USED_UP');
  });

  it('lets exactly max_files of many concurrent uploads through, across both gateways', async () => {
    showLogs();
    const maxFiles = 4;
    const total = 16;
    const link = await mint({ expires_in: 600, max_files: maxFiles });
    const linkId = JSON.parse(Buffer.from(link.token.split('.')[0], 'base64url').toString()).id;
    // Every request sends its headers and the first bytes of its file, then
    // waits: all of them are in flight together while the link's files are
    // handed out, and the refused ones are answered before any upload ends.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const answers: number[] = [];
    const uploads = Array.from({ length: total }, (_, i) =>
      heldUpload(
        `${i % 2 ? noAdmin : cluster.gatewayUrl}/upload/c${i}.jpg?link=${link.token}`,
        i,
        released,
      ).then((answer) => (answers.push(answer.status), answer)),
    );
    await waitFor(
      `${total - maxFiles} uploads refused while the rest wait`,
      async () => answers.length >= total - maxFiles,
    ).catch(() => undefined); // the counts below say what went wrong
    const early = [...answers];
    release();
    const results = await Promise.all(uploads);
    expect(results.filter((r) => r.status === 201)).toHaveLength(maxFiles);
    const refused = results.filter((r) => r.status === 403);
    expect(refused).toHaveLength(total - maxFiles);
    // Refused while the accepted ones were still in flight: they really overlapped.
    expect(early).toEqual(Array(total - maxFiles).fill(403));
    for (const r of refused) expect(JSON.parse(r.body).error.code).toBe('UPLOAD_LINK_USED_UP');

    // The link's files, as recorded: exactly max_files, in the metadata and in Redis.
    const recorded = queryDb<{ n: number }>(
      cluster,
      `SELECT count(*) AS n FROM files WHERE upload_link = '${linkId}' AND state = 'committed'`,
    );
    expect(recorded).toEqual([{ n: maxFiles }]);
    expect(
      queryDb(
        cluster,
        `SELECT id FROM files WHERE upload_link = '${linkId}' AND state != 'committed'`,
      ),
    ).toEqual([]);
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    try {
      expect(await redis.get(`${cluster.clusterName}:upload-link:${linkId}:files`)).toBe(
        String(maxFiles),
      );
    } finally {
      redis.disconnect();
    }
    const more = await fetch(link.upload_url, { method: 'POST', body: form() });
    expect((await json(more, 403)).error.code).toBe('UPLOAD_LINK_USED_UP');
  });

  it("keeps a link's file count when Redis loses it: rebuilt from the files, not reset", async () => {
    showLogs();
    const link = await mint({ expires_in: 600, max_files: 2 });
    await json(await fetch(link.upload_url, { method: 'POST', body: form() }), 201);
    // A failed upload (415) is not counted, now or when the count is rebuilt.
    const bad = await fetch(`${cluster.gatewayUrl}/upload/x.txt?link=${link.token}`, {
      method: 'PUT',
      body: 'just text, not an image at all',
    });
    expect(bad.status).toBe(415);

    // Redis restarted without persistence: the cluster's upload-link counters are gone.
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    try {
      const keys = await redis.keys(`${cluster.clusterName}:upload-link:*`);
      expect(keys.length).toBeGreaterThan(0);
      await redis.del(...keys);
    } finally {
      redis.quit();
    }

    await json(await fetch(link.upload_url, { method: 'POST', body: form() }), 201);
    const third = await fetch(`${noAdmin}/upload?link=${link.token}`, {
      method: 'POST',
      body: form(),
    });
    expect((await json(third, 403)).error.code).toBe('UPLOAD_LINK_USED_UP');
  });

  it('refuses a tampered, malformed or expired link with 403', async () => {
    showLogs();
    const link = await mint({ expires_in: 1, max_files: 5 });
    const [body, signature] = link.token.split('.') as [string, string];
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString());
    const more = Buffer.from(
      JSON.stringify({ ...payload, files: 1000, exp: payload.exp + 3600 }),
    ).toString('base64url');
    const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
    for (const token of [`${more}.${signature}`, `${body}.${flipped}`, 'garbage', `${body}`]) {
      const res = await fetch(`${cluster.gatewayUrl}/upload?link=${encodeURIComponent(token)}`, {
        method: 'POST',
        body: form(),
      });
      expect((await json(res, 403)).error.code, token).toBe('UPLOAD_LINK_INVALID');
    }
    // The page refuses it too, as a page.
    const page = await fetch(`${cluster.gatewayUrl}/u/${body}.${flipped}`);
    expect(page.status).toBe(403);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    await page.text();

    await new Promise((r) => setTimeout(r, Date.parse(link.expires_at) - Date.now() + 50));
    const expired = await fetch(link.upload_url, { method: 'POST', body: form() });
    expect((await json(expired, 403)).error.code).toBe('UPLOAD_LINK_EXPIRED');
    expect((await fetch(link.url)).status).toBe(403);
  });

  it('serves the upload page for a valid link, and validates what is minted', async () => {
    const link = await mint({ expires_in: 60, max_files: 1 });
    const page = await fetch(link.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/static/app.js');
    for (const bad of [
      { expires_in: 0, max_files: 1 },
      { expires_in: 60 },
      { expires_in: 60, max_files: 1, ttl_seconds: 10 * 365 * 86400 },
      { expires_in: 60, max_files: 1, extra: true },
    ]) {
      const res = await admin('POST', '/upload-links', bad);
      expect((await json(res, 400)).error.code, JSON.stringify(bad)).toBe('INVALID_PARAMETER');
    }
  });
});

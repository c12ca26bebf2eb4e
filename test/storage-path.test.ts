/**
 * The storage path end to end, against real processes: upload (multipart and
 * raw) → three replicas on three disks → download, for real images and a
 * 200 MB file, plus the API's answers to bad input.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { rankNodes } from '../shared/placement.js';
import {
  filesUnder,
  fixture,
  hashBody,
  jpegStream,
  logLines,
  memoryOf,
  queryDb,
  requestLine,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

function showLogsOnFailure() {
  onTestFailed(() => console.log(cluster.logTail()));
}

async function uploadForm(files: { name: string; data: Buffer; field?: string }[], query = '') {
  const form = new FormData();
  for (const f of files) form.append(f.field ?? 'file', new Blob([f.data]), f.name);
  const res = await fetch(`${cluster.gatewayUrl}/upload${query}`, { method: 'POST', body: form });
  return { status: res.status, body: (await res.json()) as any };
}

async function download(id: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${cluster.gatewayUrl}/download/${id}`, { headers });
  return { res, data: Buffer.from(await res.arrayBuffer()) };
}

/** File rows, read straight from the gateway's SQLite file. */
const fileRows = () =>
  queryDb<{ id: string; state: string }>(cluster, 'SELECT id, state FROM files');

describe('upload and download', () => {
  it('round-trips a JPEG through a multipart upload', async () => {
    showLogsOnFailure();
    const jpeg = fixture('photo.jpg');
    const up = await uploadForm([{ name: 'photo.jpg', data: jpeg }]);
    expect(up.status).toBe(201);
    expect(up.body).toMatchObject({
      name: 'photo.jpg',
      size: jpeg.length,
      content_type: 'image/jpeg',
      sha256: sha256(jpeg),
      max_downloads: 3,
      downloads_left: 3,
    });
    expect(up.body.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(up.body.delete_token).toEqual(expect.any(String));
    expect(up.body.url).toBe(`${cluster.gatewayUrl}/download/${up.body.id}`);
    expect(up.body.replicas).toEqual([
      { node: expect.any(String), state: 'ok' },
      { node: expect.any(String), state: 'ok' },
      { node: expect.any(String), state: 'ok' },
    ]);
    const expiresIn = Date.parse(up.body.expires_at) - Date.now();
    expect(expiresIn).toBeGreaterThan(3500_000);
    expect(expiresIn).toBeLessThanOrEqual(3600_000);

    const { res, data } = await download(up.body.id);
    expect(res.status).toBe(200);
    expect(sha256(data)).toBe(sha256(jpeg));
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('content-length')).toBe(String(jpeg.length));
    expect(res.headers.get('etag')).toBe(`"${sha256(jpeg)}"`);
    expect(res.headers.get('content-disposition')).toContain(`filename*=UTF-8''photo.jpg`);
    expect(res.headers.get('x-downloads-left')).toBe('2'); // left after this one
  });

  it('round-trips a PNG through a raw PUT, with options in the query', async () => {
    showLogsOnFailure();
    const png = fixture('alpha.png');
    const res = await fetch(
      `${cluster.gatewayUrl}/upload/${encodeURIComponent('été 2026.png')}?max_downloads=7&ttl=120`,
      {
        method: 'PUT',
        body: png,
      },
    );
    expect(res.status).toBe(201);
    const body = (await res.json()) as any;
    expect(body).toMatchObject({
      name: 'été 2026.png',
      content_type: 'image/png',
      sha256: sha256(png),
      max_downloads: 7,
    });
    expect(Date.parse(body.expires_at) - Date.now()).toBeLessThanOrEqual(120_000);
    const { res: got, data } = await download(body.id);
    expect(sha256(data)).toBe(sha256(png));
    expect(got.headers.get('content-disposition')).toBe(
      `inline; filename="_t_ 2026.png"; filename*=UTF-8''%C3%A9t%C3%A9%202026.png`,
    );
  });

  it('stores every replica on its own disk, under a name an operator can find', async () => {
    const jpeg = fixture('photo.jpg');
    const up = await uploadForm([{ name: 'a.jpg', data: jpeg }]);
    for (const node of cluster.nodes) {
      const found = (await filesUnder(join(node.dataDir, 'blobs'))).filter((f) =>
        f.includes(up.body.id),
      );
      expect(found, node.id).toHaveLength(1);
      expect(found[0]).toMatch(new RegExp(`${up.body.id}@${sha256(jpeg)}$`));
      expect(sha256(await readFile(join(node.dataDir, 'blobs', found[0]!)))).toBe(sha256(jpeg));
    }
  });

  it('streams a 200 MB file both ways with flat gateway memory', async () => {
    showLogsOnFailure();
    const size = 200 * 1024 * 1024;
    const payload = jpegStream(size);
    const pid = cluster.gateway!.proc.pid!;
    const before = memoryOf(pid).rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, memoryOf(pid).rss)), 50);
    try {
      const up = await request(`${cluster.gatewayUrl}/upload/big.jpg?max_downloads=0`, {
        method: 'PUT',
        body: payload.stream,
        headers: { 'content-length': String(size) },
      });
      const body = (await up.body.json()) as any;
      expect(up.statusCode).toBe(201);
      expect(body.size).toBe(size);
      expect(body.sha256).toBe(payload.digest());
      expect(body.downloads_left).toBeNull();

      const res = await request(`${cluster.gatewayUrl}/download/${body.id}`);
      expect(res.statusCode).toBe(200);
      expect(await hashBody(res.body)).toEqual({ sha256: payload.digest(), size });
    } finally {
      clearInterval(sampler);
    }
    // 200 MB went through twice; holding it would show as >= 200 MB. GC noise alone
    // has reached ~50 MB on a busy CI machine, so the bar sits well between the two.
    expect(peak - before).toBeLessThan(size / 2);
  });

  it('serves byte ranges and conditional requests', async () => {
    const jpeg = fixture('photo.jpg');
    const up = await uploadForm([{ name: 'r.jpg', data: jpeg }]);
    const part = await download(up.body.id, { range: 'bytes=100-1099' });
    expect(part.res.status).toBe(206);
    expect(part.res.headers.get('content-range')).toBe(`bytes 100-1099/${jpeg.length}`);
    expect(part.data.equals(jpeg.subarray(100, 1100))).toBe(true);

    const tail = await download(up.body.id, { range: 'bytes=-10' });
    expect(tail.data.equals(jpeg.subarray(-10))).toBe(true);

    const outside = await download(up.body.id, { range: `bytes=${jpeg.length}-` });
    expect(outside.res.status).toBe(416);
    expect(outside.res.headers.get('content-range')).toBe(`bytes */${jpeg.length}`);

    const cached = await download(up.body.id, { 'if-none-match': `"${sha256(jpeg)}"` });
    expect(cached.res.status).toBe(304);
  });

  it('answers HEAD with headers only', async () => {
    const jpeg = fixture('photo.jpg');
    const up = await uploadForm([{ name: 'h.jpg', data: jpeg }]);
    const res = await fetch(`${cluster.gatewayUrl}/download/${up.body.id}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(jpeg.length));
    expect(res.headers.get('etag')).toBe(`"${sha256(jpeg)}"`);
  });

  it('accepts several files in one request', async () => {
    const up = await uploadForm(
      [
        { name: 'one.jpg', data: fixture('photo.jpg') },
        { name: 'two.png', data: fixture('alpha.png') },
      ],
      '?max_downloads=1',
    );
    expect(up.status).toBe(201);
    expect(up.body.files.map((f: any) => [f.name, f.content_type, f.max_downloads])).toEqual([
      ['one.jpg', 'image/jpeg', 1],
      ['two.png', 'image/png', 1],
    ]);
  });

  it('takes options from form fields', async () => {
    const form = new FormData();
    form.append('max_downloads', '9');
    form.append('ttl', '1h');
    form.append('file', new Blob([fixture('photo.jpg')]), 'f.jpg');
    const res = await fetch(`${cluster.gatewayUrl}/upload`, { method: 'POST', body: form });
    const body = (await res.json()) as any;
    expect(res.status).toBe(201);
    expect(body.max_downloads).toBe(9);
  });

  it('reports files and the cluster', async () => {
    const up = await uploadForm([{ name: 'm.jpg', data: fixture('photo.jpg') }]);
    const meta = (await (await fetch(`${cluster.gatewayUrl}/files/${up.body.id}`)).json()) as any;
    expect(meta).toMatchObject({
      id: up.body.id,
      status: 'active',
      sha256: up.body.sha256,
      downloads_left: 3,
    });
    expect(meta.replicas).toHaveLength(3);
    expect(meta).not.toHaveProperty('delete_token');

    const view = (await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as any;
    expect(view.nodes.map((n: any) => [n.id, n.status])).toEqual(
      cluster.nodes.map((n) => [n.id, 'online']),
    );
    expect(view.objects).toBe(fileRows().filter((r) => r.state === 'committed').length);
    expect(view.under_replicated).toBe(0);

    expect((await fetch(`${cluster.gatewayUrl}/ready`)).status).toBe(200);
  });
});

describe('a corrupt replica', () => {
  /** Flips one byte of `id`'s blob on the node that is first in read order; returns that node's id. */
  async function corruptFirstReplica(id: string): Promise<string> {
    const meta = (await (await fetch(`${cluster.gatewayUrl}/files/${id}`)).json()) as any;
    const holders = new Set(
      meta.replicas.filter((r: any) => r.state === 'ok').map((r: any) => r.node),
    );
    const first = rankNodes(id, cluster.nodes).find((n) => holders.has(n.id))!;
    const [file] = (await filesUnder(join(first.dataDir, 'blobs'))).filter(
      (f) => f.includes(`${id}@`) && !f.endsWith('.blocks'), // not its block sums
    );
    const path = join(first.dataDir, 'blobs', file!);
    const bytes = await readFile(path);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(path, bytes);
    return first.id;
  }

  it('is skipped before the first byte for a small file: the download still succeeds', async () => {
    showLogsOnFailure();
    const jpeg = fixture('photo.jpg');
    const up = await uploadForm([{ name: 'c.jpg', data: jpeg }], '?max_downloads=0');
    const bad = await corruptFirstReplica(up.body.id);
    for (let i = 0; i < 2; i++) {
      const { res, data } = await download(up.body.id);
      expect(res.status).toBe(200);
      expect(sha256(data)).toBe(sha256(jpeg));
    }
    // The node quarantined its copy; the gateway learned it is gone when it got a 404.
    const meta = (await (await fetch(`${cluster.gatewayUrl}/files/${up.body.id}`)).json()) as any;
    expect(meta.replicas).toContainEqual({ node: bad, state: 'missing' });
  });

  it('is served whole and right for a large file: the node cuts at the bad block, the next replica goes on', async () => {
    showLogsOnFailure();
    const size = 3 * 1024 * 1024;
    const payload = jpegStream(size);
    const put = await request(`${cluster.gatewayUrl}/upload/c.jpg?max_downloads=0`, {
      method: 'PUT',
      body: payload.stream,
    });
    const body = (await put.body.json()) as any;
    const bad = await corruptFirstReplica(body.id); // a byte in its second 1 MiB block

    // The node checks each block before sending it: it sends the first, then cuts its
    // stream at the bad one; every byte sent was right, so the gateway asks the next
    // replica for the rest and the client never notices.
    const first = await request(`${cluster.gatewayUrl}/download/${body.id}`, {
      headers: { 'x-request-id': `corrupt-${body.id}` },
    });
    expect(first.statusCode).toBe(200);
    expect(await hashBody(first.body)).toEqual({ sha256: payload.digest(), size });
    // The fault went where the test says: the node caught its corrupt copy, the gateway resumed.
    await waitFor(
      'the node quarantining its copy',
      async () =>
        logLines(cluster, bad, (l) => l.msg === 'corrupt blob quarantined' && l.key === body.id)
          .length === 1,
    );
    // The gateway's log reaches its file a moment after the bytes reach the client.
    const failover = await waitFor('the gateway logging the resume', async () => {
      const lines = logLines(
        cluster,
        'gateway',
        (l) => l.request_id === `corrupt-${body.id}` && typeof l.msg === 'string',
      ).map((l) => [l.msg, l.node]);
      return lines.some(([msg]) => msg === 'download resumed') && lines;
    });
    expect(failover).toContainEqual(['replica failed mid-stream', bad]);
    expect(failover).toContainEqual(['download resumed', expect.any(String)]);
    const meta = (await (await fetch(`${cluster.gatewayUrl}/files/${body.id}`)).json()) as any;
    expect(meta.replicas).toContainEqual({ node: bad, state: 'missing' });

    const second = await request(`${cluster.gatewayUrl}/download/${body.id}`);
    expect(await hashBody(second.body)).toEqual({ sha256: payload.digest(), size });
  });
});

describe('bad input gets a clear 4xx and leaves nothing behind', () => {
  async function expectError(res: Response, status: number, code: string) {
    expect(res.status).toBe(status);
    const body = (await res.json()) as any;
    expect(body.error.code).toBe(code);
    expect(body.error.message).toEqual(expect.any(String));
  }

  it('refuses what is not an image, by content and not by name', async () => {
    const rowsBefore = fileRows().length;
    const res = await fetch(`${cluster.gatewayUrl}/upload/photo.jpg`, {
      method: 'PUT',
      body: '{"not":"an image"}',
    });
    await expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(fileRows().length).toBe(rowsBefore);
  });

  it('stores none of a request whose second file is refused', async () => {
    const rowsBefore = fileRows().length;
    const form = new FormData();
    form.append('file', new Blob([fixture('photo.jpg')]), 'ok.jpg');
    form.append('file', new Blob(['plain text, not an image']), 'notes.jpg');
    const requestId = `refused-second-${Date.now()}`;
    const res = await fetch(`${cluster.gatewayUrl}/upload`, {
      method: 'POST',
      body: form,
      headers: { 'x-request-id': requestId },
    });
    await expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    // The gateway is done with the request (it logs its line once the response
    // has ended): whatever it stored of the first file is gone by now.
    await waitFor('the gateway done with the request', async () =>
      requestLine(cluster, 'gateway', requestId),
    );
    expect(fileRows().length).toBe(rowsBefore);
  });

  it.each([
    ['a JSON body', { 'content-type': 'application/json' }, '{}', 400, 'NOT_MULTIPART'],
    [
      'a form without a file',
      undefined,
      (() => {
        const f = new FormData();
        f.append('ttl', '60');
        return f;
      })(),
      400,
      'NO_FILE',
    ],
    [
      'a file in the wrong field',
      undefined,
      (() => {
        const f = new FormData();
        f.append('photo', new Blob([fixture('photo.jpg')]), 'p.jpg');
        return f;
      })(),
      400,
      'UNEXPECTED_FIELD',
    ],
    [
      'a bad option',
      undefined,
      (() => {
        const f = new FormData();
        f.append('max_downloads', '-3');
        f.append('file', new Blob([fixture('photo.jpg')]), 'p.jpg');
        return f;
      })(),
      400,
      'INVALID_OPTION',
    ],
    [
      'a truncated multipart body',
      { 'content-type': 'multipart/form-data; boundary=XyZ' },
      '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8\xff',
      400,
      'MALFORMED_MULTIPART',
    ],
    [
      'a multipart type without boundary',
      { 'content-type': 'multipart/form-data' },
      'x',
      400,
      'MALFORMED_MULTIPART',
    ],
  ] as const)('answers %s', async (_what, headers, body, status, code) => {
    const res = await fetch(`${cluster.gatewayUrl}/upload`, {
      method: 'POST',
      headers,
      body: body as RequestInit['body'],
    });
    await expectError(res, status, code);
  });

  it('refuses an empty file and a PUT without a name', async () => {
    await expectError(
      await fetch(`${cluster.gatewayUrl}/upload/empty.jpg`, { method: 'PUT', body: '' }),
      400,
      'EMPTY_FILE',
    );
    await expectError(
      await fetch(`${cluster.gatewayUrl}/upload`, { method: 'PUT', body: fixture('photo.jpg') }),
      400,
      'MISSING_FILENAME',
    );
    await expectError(
      await fetch(`${cluster.gatewayUrl}/upload/x.jpg?ttl=forever`, {
        method: 'PUT',
        body: fixture('photo.jpg'),
      }),
      400,
      'INVALID_OPTION',
    );
  });

  it('answers 404 for unknown and malformed ids', async () => {
    for (const id of [
      'AAAAAAAAAAAAAAAAAAAAAA',
      'short',
      '..%2f..%2fetc%2fpasswd',
      'x'.repeat(500),
    ]) {
      await expectError(await fetch(`${cluster.gatewayUrl}/download/${id}`), 404, 'FILE_NOT_FOUND');
      await expectError(await fetch(`${cluster.gatewayUrl}/files/${id}`), 404, 'FILE_NOT_FOUND');
    }
  });

  it('leaves no temp file on any node after all of the above', async () => {
    for (const node of cluster.nodes)
      expect(await filesUnder(join(node.dataDir, 'tmp'))).toEqual([]);
  });
});

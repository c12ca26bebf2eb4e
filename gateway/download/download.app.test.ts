/**
 * The download routes' HTTP rules, on the gateway app in this process
 * (test/in-process-gateway.ts): 200, 206, 304, 416 and HEAD with their
 * headers; 404 and 410; 503 when no replica serves; replica failover; and
 * the counting rules (docs/api.md, "What counts as a download").
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { rankNodes } from '../../shared/placement.js';
import {
  PHOTO,
  expectError,
  gatewaysPerTest,
  sha256,
  type InProcessGateway,
} from '../../test/in-process-gateway.js';

const gateway = gatewaysPerTest();
afterEach(() => {
  vi.useRealTimers();
});

/** Downloads of `id` used, as the store has them (the count every gateway goes by). */
async function used(gw: InProcessGateway, id: string): Promise<number | undefined> {
  return (await gw.store.getFile(id))?.downloadsUsed;
}

/** The nodes holding `id`, in the order an idle gateway reads them (placement order). */
function readOrder(gw: InProcessGateway, id: string): string[] {
  return rankNodes(id, gw.config.nodes).map((n) => n.id);
}

describe('GET /download/:id', () => {
  it('answers 200 with the bytes and their headers, and counts one download', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    const res = await gw.request(`/download/${file.id}`);
    expect(res.status).toBe(200);
    expect(Object.fromEntries(res.headers)).toMatchObject({
      'content-type': 'image/jpeg',
      'content-length': String(PHOTO.length),
      'content-disposition': `inline; filename="photo.jpg"; filename*=UTF-8''photo.jpg`,
      etag: `"${sha256(PHOTO)}"`,
      'accept-ranges': 'bytes',
      'cache-control': 'private, no-store',
      'x-content-type-options': 'nosniff',
      'x-downloads-left': '2',
    });
    expect(Buffer.from(await res.arrayBuffer())).toEqual(PHOTO);
    expect(await used(gw, file.id)).toBe(1);
  });

  it('offers a file that is not an image as an attachment', async () => {
    const gw = await gateway({ ALLOWED_TYPES: '*/*' });
    const text = Buffer.from('some notes\n');
    const file = await gw.upload(text, { name: 'notes.txt' });
    const res = await gw.request(`/download/${file.id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="notes.txt"/);
    expect(await res.text()).toBe('some notes\n');
  });

  it('serves exactly max_downloads GETs, then 410 DOWNLOAD_LIMIT_REACHED with X-Downloads-Left: 0', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=2' });
    const left = [];
    for (let i = 0; i < 2; i++) {
      const res = await gw.request(`/download/${file.id}`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      left.push(res.headers.get('x-downloads-left'));
    }
    expect(left).toEqual(['1', '0']);
    for (const method of ['GET', 'HEAD']) {
      const res = await gw.request(`/download/${file.id}`, { method });
      expect(res.status).toBe(410);
      expect(res.headers.get('x-downloads-left')).toBe('0');
      if (method === 'GET') await expectError(res, 410, 'DOWNLOAD_LIMIT_REACHED');
    }
    expect(await used(gw, file.id)).toBe(2);
    const view = await (await gw.request(`/files/${file.id}`)).json();
    expect(view).toMatchObject({ status: 'exhausted', downloads_used: 2, downloads_left: 0 });
  });

  it('serves exactly max_downloads of many GETs at once', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    const answers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await gw.request(`/download/${file.id}`);
        await res.arrayBuffer();
        return res.status;
      }),
    );
    expect(answers.sort()).toEqual([200, 200, 200, 410, 410, 410, 410, 410]);
    expect(await used(gw, file.id)).toBe(3);
  });

  it('never takes a download of an unlimited file (max_downloads=0)', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=0' });
    for (let i = 0; i < 3; i++) {
      const res = await gw.request(`/download/${file.id}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-downloads-left')).toBe('unlimited');
      await res.arrayBuffer();
    }
    expect(gw.counter.takes).toBe(0);
  });

  it('answers a Range with 206, Content-Range and those bytes, and counts it', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    const res = await gw.request(`/download/${file.id}`, { headers: { range: 'bytes=100-5099' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 100-5099/${PHOTO.length}`);
    expect(res.headers.get('content-length')).toBe('5000');
    expect(res.headers.get('x-downloads-left')).toBe('2');
    expect(Buffer.from(await res.arrayBuffer())).toEqual(PHOTO.subarray(100, 5100));
    expect(gw.nodes.reads.at(-1)).toMatchObject({ key: file.id, range: 'bytes=100-5099' });
    expect(await used(gw, file.id)).toBe(1);
  });

  it('honours a Range under If-Range only with the current ETag, else sends the whole file', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=0' });
    const part = await gw.request(`/download/${file.id}`, {
      headers: { range: 'bytes=100-', 'if-range': `"${file.sha256}"` },
    });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(PHOTO.subarray(100));
    for (const ifRange of ['"other"', `W/"${file.sha256}"`, 'Wed, 21 Oct 2015 07:28:00 GMT']) {
      const whole = await gw.request(`/download/${file.id}`, {
        headers: { range: 'bytes=100-', 'if-range': ifRange },
      });
      expect(whole.status).toBe(200);
      expect(whole.headers.get('content-range')).toBeNull();
      expect(Buffer.from(await whole.arrayBuffer())).toEqual(PHOTO);
    }
  });

  it('answers a Range outside the file with 416 and Content-Range: bytes */size, uncounted', async () => {
    const gw = await gateway();
    const file = await gw.upload();
    const res = await gw.request(`/download/${file.id}`, {
      headers: { range: `bytes=${PHOTO.length}-` },
    });
    expect(res.headers.get('content-range')).toBe(`bytes */${PHOTO.length}`);
    await expectError(res, 416, 'RANGE_NOT_SATISFIABLE');
    expect(await used(gw, file.id)).toBe(0);
    expect(gw.nodes.reads).toEqual([]);
  });

  it('answers If-None-Match with the ETag with 304, uncounted', async () => {
    const gw = await gateway();
    const file = await gw.upload();
    const etag = `"${file.sha256}"`;
    for (const ifNoneMatch of [etag, `"other", ${etag}`]) {
      const res = await gw.request(`/download/${file.id}`, {
        headers: { 'if-none-match': ifNoneMatch },
      });
      expect(res.status).toBe(304);
      expect(res.headers.get('etag')).toBe(etag);
      expect(await res.text()).toBe('');
    }
    // Another ETag is no match: the bytes, counted.
    const stale = await gw.request(`/download/${file.id}`, {
      headers: { 'if-none-match': '"other"' },
    });
    expect(stale.status).toBe(200);
    await stale.arrayBuffer();
    expect(await used(gw, file.id)).toBe(1);
  });

  it('answers HEAD with the headers alone, uncounted and without reading a node', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=1' });
    for (let i = 0; i < 3; i++) {
      const res = await gw.request(`/download/${file.id}`, { method: 'HEAD' });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBe(String(PHOTO.length));
      expect(res.headers.get('etag')).toBe(`"${file.sha256}"`);
      expect(res.headers.get('x-downloads-left')).toBe('1');
      expect(await res.text()).toBe('');
    }
    const range = await gw.request(`/download/${file.id}`, {
      method: 'HEAD',
      headers: { range: 'bytes=0-9' },
    });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe(`bytes 0-9/${PHOTO.length}`);
    expect(await used(gw, file.id)).toBe(0);
    expect(gw.nodes.reads).toEqual([]);
  });

  it('answers 404 FILE_NOT_FOUND for an unknown id, a malformed one, and an upload not committed', async () => {
    const gw = await gateway();
    await gw.store.beginUpload({
      id: 'PendingPendingPending0',
      name: 'a.jpg',
      contentType: 'image/jpeg',
      maxDownloads: 3,
      createdAt: Date.now(),
      expiresAt: Date.now() + 60_000,
      deleteTokenHash: 'x',
      owner: 'gw',
    });
    for (const id of [
      'AAAAAAAAAAAAAAAAAAAAAA',
      'not-an-id',
      'a'.repeat(200),
      'PendingPendingPending0',
    ]) {
      await expectError(await gw.request(`/download/${id}`), 404, 'FILE_NOT_FOUND');
      expect((await gw.request(`/download/${id}`, { method: 'HEAD' })).status).toBe(404);
    }
  });

  it('answers 410 FILE_EXPIRED from the moment the file expires', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'ttl=60' });
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.parse(file.expires_at) - 1);
    expect((await gw.request(`/download/${file.id}`, { method: 'HEAD' })).status).toBe(200);
    vi.setSystemTime(Date.parse(file.expires_at));
    await expectError(await gw.request(`/download/${file.id}`), 410, 'FILE_EXPIRED');
    expect((await gw.request(`/download/${file.id}`, { method: 'HEAD' })).status).toBe(410);
    expect(await used(gw, file.id)).toBe(0);
  });

  it('answers 410 FILE_DELETED once its owner deleted it', async () => {
    const gw = await gateway();
    const file = await gw.upload();
    const del = await gw.request(`/files/${file.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': file.delete_token },
    });
    expect(del.status).toBe(204);
    await expectError(await gw.request(`/download/${file.id}`), 410, 'FILE_DELETED');
  });

  it('answers 400 UNKNOWN_VARIANT for a variant it does not serve, before looking the file up', async () => {
    const gw = await gateway();
    for (const variant of ['thumb', 'huge'])
      await expectError(
        await gw.request(`/download/AAAAAAAAAAAAAAAAAAAAAA?variant=${variant}`),
        400,
        'UNKNOWN_VARIANT',
      );
  });

  it('serves ?variant=compressed once made (404 NOT_READY before), and counts it like the original', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    await expectError(
      await gw.request(`/download/${file.id}?variant=compressed`),
      404,
      'NOT_READY',
    );
    const webp = Buffer.from('compressed bytes');
    await gw.addVariant(file.id, 'compressed', webp);
    const res = await gw.request(`/download/${file.id}?variant=compressed`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/webp');
    expect(res.headers.get('content-disposition')).toMatch(/filename="photo.webp"/);
    expect(res.headers.get('etag')).toBe(`"${sha256(webp)}"`);
    expect(res.headers.get('x-downloads-left')).toBe('2');
    expect(Buffer.from(await res.arrayBuffer())).toEqual(webp);
    expect(await used(gw, file.id)).toBe(1);
  });
});

describe('GET /download/:id from the replicas', () => {
  it('serves from the next replica when the first is down, counting one download', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    const [first, second] = readOrder(gw, file.id);
    gw.nodes.faults.set(first!, 'down');
    const res = await gw.request(`/download/${file.id}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(PHOTO);
    expect(gw.nodes.reads.map((r) => r.node)).toEqual([first, second]);
    expect(gw.registry.failures).toEqual([first]);
    expect(await used(gw, file.id)).toBe(1);
  });

  it('serves from the next replica when the first has lost its copy, and queues a repair', async () => {
    const gw = await gateway();
    const file = await gw.upload();
    const [first] = readOrder(gw, file.id);
    gw.nodes.blobs.get(first!)!.delete(file.id);
    const res = await gw.request(`/download/${file.id}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(PHOTO);
    expect(await gw.store.replicasOf(file.id)).toContainEqual(
      expect.objectContaining({ node: first, state: 'missing' }),
    );
    await expect
      .poll(() => gw.jobs.to(gw.jobs.names.replicaRepair))
      .toEqual([{ fileId: file.id, key: file.id }]);
  });

  it('carries on from the next replica when one cuts its stream, so the client gets every byte', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    const [first, second] = readOrder(gw, file.id);
    gw.nodes.faults.set(first!, 'cut');
    const res = await gw.request(`/download/${file.id}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(PHOTO);
    // The rest of the file, from the first byte the cut replica did not send.
    expect(gw.nodes.reads).toEqual([
      { node: first, key: file.id, range: undefined },
      { node: second, key: file.id, range: `bytes=4096-${PHOTO.length - 1}` },
    ]);
    expect(await used(gw, file.id)).toBe(1);
  });

  it('resumes a range after a node that checks each byte before sending it cut its stream', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    const [first, second] = readOrder(gw, file.id);
    for (const node of readOrder(gw, file.id)) gw.nodes.verifying.add(node);
    gw.nodes.faults.set(first!, 'cut'); // its health still answers: up, it cut its own stream
    const res = await gw.request(`/download/${file.id}`, { headers: { range: 'bytes=100-9999' } });
    expect(res.status).toBe(206);
    // What it sent had verified, so the rest comes from the next replica.
    expect(Buffer.from(await res.arrayBuffer())).toEqual(PHOTO.subarray(100, 10000));
    expect(gw.nodes.reads).toEqual([
      { node: first, key: file.id, range: 'bytes=100-9999' },
      { node: second, key: file.id, range: 'bytes=4196-9999' },
    ]);
  });

  it('resumes a read it does not hash only from nodes that check each byte before sending it', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    const [first, second, third] = readOrder(gw, file.id);
    gw.nodes.verifying.add(first!).add(third!); // `second` would stream unchecked bytes
    gw.nodes.faults.set(first!, 'cut');
    const res = await gw.request(`/download/${file.id}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(PHOTO);
    const rest = `bytes=4096-${PHOTO.length - 1}`;
    expect(gw.nodes.reads).toEqual([
      { node: first, key: file.id, range: undefined },
      { node: second, key: file.id, range: rest },
      { node: third, key: file.id, range: rest },
    ]);
  });

  it('answers 503 NO_REPLICA_AVAILABLE when every replica fails before its first byte, and gives the download back', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    for (const node of readOrder(gw, file.id)) gw.nodes.faults.set(node, 'down');
    const res = await gw.request(`/download/${file.id}`);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(res.headers.get('x-downloads-left')).toBe('3');
    await expectError(res, 503, 'NO_REPLICA_AVAILABLE');
    expect(gw.nodes.reads).toHaveLength(3);
    expect({ takes: gw.counter.takes, givenBack: gw.counter.givenBack }).toEqual({
      takes: 1,
      givenBack: 1,
    });
    expect(await used(gw, file.id)).toBe(0);
  });

  it('answers 503 NODES_BUSY at once when every replica has all its read connections busy, uncounted', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    for (const node of readOrder(gw, file.id)) gw.nodes.full.add(node);
    const res = await gw.request(`/download/${file.id}`);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(res.headers.get('x-downloads-left')).toBe('3');
    await expectError(res, 503, 'NODES_BUSY');
    expect(gw.nodes.reads).toEqual([]);
    expect(gw.counter.takes).toBe(0);
  });

  it('answers 503 COUNTER_UNAVAILABLE, reading no node, when the download counter fails', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    gw.counter.unavailable = true;
    await expectError(await gw.request(`/download/${file.id}`), 503, 'COUNTER_UNAVAILABLE');
    expect(gw.nodes.reads).toEqual([]);
  });
});

describe('resuming a download (resume grants)', () => {
  /** The `name=value` of the grant a response set, as a browser sends it back. */
  const cookieOf = (res: Response) => res.headers.get('set-cookie')?.split(';')[0];

  it('serves a resume after a counted GET without counting, even once the downloads are used up', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=1' });
    const first = await gw.request(`/download/${file.id}`);
    expect(first.status).toBe(200);
    expect(first.headers.get('set-cookie')).toMatch(
      new RegExp(`^trove_grant=\\d+\\.[\\w-]+; Max-Age=1800; Path=/download/${file.id}; HttpOnly`),
    );
    await first.arrayBuffer();

    // By address (loopback here), as curl -C - resumes: no cookie.
    const resumed = await gw.request(`/download/${file.id}`, { headers: { range: 'bytes=100-' } });
    expect(resumed.status).toBe(206);
    expect(resumed.headers.get('x-downloads-left')).toBe('0');
    expect(resumed.headers.get('set-cookie')).toMatch(/^trove_grant=/); // renewed
    expect(Buffer.from(await resumed.arrayBuffer())).toEqual(PHOTO.subarray(100));
    // A fresh GET, with or without a Range from byte 0, HEAD too: used up.
    for (const init of [{}, { headers: { range: 'bytes=0-' } }, { method: 'HEAD' }]) {
      const res = await gw.request(`/download/${file.id}`, init);
      expect(res.status).toBe(410);
      expect(res.headers.get('x-downloads-left')).toBe('0');
      expect(res.headers.get('set-cookie')).toBeNull();
    }
    expect(await used(gw, file.id)).toBe(1);
    expect(gw.counter.takes).toBe(1);
    const metrics = await (await gw.request('/metrics')).text();
    expect(metrics).toMatch(/trove_download_resumes_total\{grant="address"\} 1/);
  });

  it('serves a resume under If-Range with the cookie alone, from byte 0 too', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=2' });
    const first = await gw.request(`/download/${file.id}`);
    await first.arrayBuffer();
    await gw.redis.del(`apptest:grant:${file.id}:127.0.0.1`); // as if from another address
    const headers = { cookie: cookieOf(first)!, 'if-range': `"${file.sha256}"` };
    for (const range of ['bytes=5000-', 'bytes=0-']) {
      const res = await gw.request(`/download/${file.id}`, { headers: { ...headers, range } });
      expect(res.status).toBe(206);
      expect(res.headers.get('x-downloads-left')).toBe('1');
      await res.arrayBuffer();
    }
    expect(await used(gw, file.id)).toBe(1);
    const metrics = await (await gw.request('/metrics')).text();
    expect(metrics).toMatch(/trove_download_resumes_total\{grant="cookie"\} 2/);
  });

  it('counts a range with no grant and gives one; a cookie of another file is none; an unlimited file gets none', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=2' });
    const part = await gw.request(`/download/${file.id}`, { headers: { range: 'bytes=100-' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('x-downloads-left')).toBe('1');
    expect(part.headers.get('set-cookie')).toMatch(/^trove_grant=/);
    await part.arrayBuffer();
    // A cookie of another file is no grant for this one.
    const other = await gw.upload(PHOTO, { query: 'max_downloads=1' });
    const res = await gw.request(`/download/${other.id}`, {
      headers: { range: 'bytes=100-', cookie: cookieOf(part)!.replace(file.id, other.id) },
    });
    expect(res.headers.get('x-downloads-left')).toBe('0');
    await res.arrayBuffer();
    expect(await used(gw, other.id)).toBe(1);

    const unlimited = await gw.upload(PHOTO, { query: 'max_downloads=0' });
    const free = await gw.request(`/download/${unlimited.id}`);
    expect(free.headers.get('set-cookie')).toBeNull();
    await free.arrayBuffer();
  });

  it('takes nothing and gives nothing back for a resume no replica serves', async () => {
    const gw = await gateway({ DOWNLOAD_CACHE_BYTES: '0' });
    const file = await gw.upload(PHOTO, { query: 'max_downloads=1' });
    await (await gw.request(`/download/${file.id}`)).arrayBuffer();
    for (const node of readOrder(gw, file.id)) gw.nodes.faults.set(node, 'down');
    const res = await gw.request(`/download/${file.id}`, { headers: { range: 'bytes=100-' } });
    expect(res.headers.get('x-downloads-left')).toBe('0');
    expect(res.headers.get('set-cookie')).toBeNull();
    await expectError(res, 503, 'NO_REPLICA_AVAILABLE');
    expect({ takes: gw.counter.takes, givenBack: gw.counter.givenBack }).toEqual({
      takes: 1,
      givenBack: 0,
    });
    expect(await used(gw, file.id)).toBe(1);
  });

  it('gives no grants with DOWNLOAD_GRANT_TTL_SECONDS=0: every resume counts', async () => {
    const gw = await gateway({ DOWNLOAD_GRANT_TTL_SECONDS: '0' });
    const file = await gw.upload(PHOTO, { query: 'max_downloads=1' });
    const first = await gw.request(`/download/${file.id}`);
    expect(first.headers.get('set-cookie')).toBeNull();
    await first.arrayBuffer();
    const res = await gw.request(`/download/${file.id}`, { headers: { range: 'bytes=100-' } });
    await expectError(res, 410, 'DOWNLOAD_LIMIT_REACHED');
  });
});

describe("the gateway's cache of small verified blobs", () => {
  /** GETs `id` (with `headers`): its status and bytes. */
  async function get(gw: InProcessGateway, id: string, headers: Record<string, string> = {}) {
    const res = await gw.request(`/download/${id}`, { headers });
    return {
      status: res.status,
      bytes: Buffer.from(await res.arrayBuffer()),
      headers: res.headers,
    };
  }

  it('serves a read file again without a node read, and still counts every download', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=3' });
    for (let i = 0; i < 3; i++) {
      const got = await get(gw, file.id);
      expect(got.status).toBe(200);
      expect(got.bytes).toEqual(PHOTO);
      expect(got.headers.get('x-downloads-left')).toBe(String(2 - i));
    }
    expect(gw.nodes.reads).toHaveLength(1); // the first GET only
    await expectError(await gw.request(`/download/${file.id}`), 410, 'DOWNLOAD_LIMIT_REACHED');
    expect(await used(gw, file.id)).toBe(3);
    // A range of a cached blob comes from the cache too.
    const other = await gw.upload(PHOTO, { query: 'max_downloads=0' });
    await get(gw, other.id);
    const part = await get(gw, other.id, { range: 'bytes=10-19' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${PHOTO.length}`);
    expect(part.bytes).toEqual(PHOTO.subarray(10, 20));
    expect(gw.nodes.reads.filter((r) => r.key === other.id)).toHaveLength(1);
    const metrics = await (await gw.request('/metrics')).text();
    expect(metrics).toMatch(/trove_download_cache_lookups_total\{result="hit"\} 3/);
    expect(metrics).toMatch(/trove_download_cache_lookups_total\{result="miss"\} 2/);
    expect(metrics).toMatch(new RegExp(`trove_download_cache_bytes ${2 * PHOTO.length}`));
  });

  it('keeps nothing of a read that failed its checksum, nor of a range', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=0' });
    const rotten = Buffer.from(PHOTO);
    rotten[rotten.length - 1]! ^= 1;
    const holders = gw.nodes.holders(file.id);
    for (const node of holders) gw.nodes.blobs.get(node)!.set(file.id, rotten);
    const bad = await gw.request(`/download/${file.id}`);
    await expect(bad.arrayBuffer()).rejects.toThrow(); // cut short: the client sees a truncated body
    // A part of a blob cannot be checked against its sha256, so it is never kept either
    // (a node checks its block sums; these fake ones do not).
    expect((await get(gw, file.id, { range: `bytes=1-${PHOTO.length - 1}` })).status).toBe(206);
    for (const node of holders) gw.nodes.blobs.get(node)!.set(file.id, PHOTO);
    const reads = gw.nodes.reads.length;
    expect(await get(gw, file.id)).toMatchObject({ status: 200, bytes: PHOTO });
    expect(gw.nodes.reads.length).toBe(reads + 1); // read from a node, not the cache
  });

  it('forgets a file deleted through this gateway; DOWNLOAD_CACHE_BYTES=0 turns it off', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=0' });
    await get(gw, file.id);
    expect(gw.blobCache.stats().entries).toBe(1);
    await gw.request(`/files/${file.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': file.delete_token },
    });
    expect(gw.blobCache.stats()).toMatchObject({ entries: 0, bytes: 0 });
    await expectError(await gw.request(`/download/${file.id}`), 410, 'FILE_DELETED');

    const off = await gateway({ DOWNLOAD_CACHE_BYTES: '0' });
    const again = await off.upload(PHOTO, { query: 'max_downloads=0' });
    for (let i = 0; i < 3; i++) expect((await get(off, again.id)).bytes).toEqual(PHOTO);
    expect(off.nodes.reads).toHaveLength(3);
  });
});

describe('GET /files/:id/thumbnail', () => {
  it('answers 404 NOT_READY until the thumbnail is made, NO_VARIANT when it never will be', async () => {
    const gw = await gateway({ ALLOWED_TYPES: '*/*' });
    const image = await gw.upload();
    await expectError(await gw.request(`/files/${image.id}/thumbnail`), 404, 'NOT_READY');
    const text = await gw.upload(Buffer.from('notes\n'), { name: 'notes.txt' });
    await expectError(await gw.request(`/files/${text.id}/thumbnail`), 404, 'NO_VARIANT');
  });

  it('serves the thumbnail without ever counting, even once the downloads are used up', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=1' });
    const thumb = Buffer.from('thumbnail bytes');
    await gw.addVariant(file.id, 'thumb', thumb);
    await (await gw.request(`/download/${file.id}`)).arrayBuffer(); // the one download
    for (let i = 0; i < 3; i++) {
      const res = await gw.request(`/files/${file.id}/thumbnail`);
      expect(res.status).toBe(200);
      expect(Object.fromEntries(res.headers)).toMatchObject({
        'content-type': 'image/webp',
        'content-length': String(thumb.length),
        etag: `"${sha256(thumb)}"`,
      });
      expect(res.headers.get('content-disposition')).toMatch(/filename="photo-thumb.webp"/);
      expect(res.headers.get('x-downloads-left')).toBeNull();
      expect(Buffer.from(await res.arrayBuffer())).toEqual(thumb);
    }
    const range = await gw.request(`/files/${file.id}/thumbnail`, {
      headers: { range: 'bytes=0-4' },
    });
    expect(range.status).toBe(206);
    expect(await range.text()).toBe('thumb');
    expect(gw.counter.takes).toBe(1);
    expect(await used(gw, file.id)).toBe(1);
  });

  it('answers 410 once the file is deleted, 404 for an unknown id', async () => {
    const gw = await gateway();
    const file = await gw.upload();
    await gw.addVariant(file.id, 'thumb', Buffer.from('thumbnail bytes'));
    await gw.request(`/files/${file.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': file.delete_token },
    });
    await expectError(await gw.request(`/files/${file.id}/thumbnail`), 410, 'FILE_DELETED');
    await expectError(
      await gw.request('/files/AAAAAAAAAAAAAAAAAAAAAA/thumbnail'),
      404,
      'FILE_NOT_FOUND',
    );
  });
});

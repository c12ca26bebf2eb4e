/**
 * The upload routes' HTTP rules, on the gateway app in this process
 * (test/in-process-gateway.ts): 201 and its answer, the size and type limits,
 * bad options, a short quorum; and that a refused upload leaves nothing behind.
 */
import { describe, expect, it } from 'vitest';
import {
  PHOTO,
  PNG,
  expectError,
  gatewaysPerTest,
  sha256,
  type UploadAnswer,
} from '../../test/in-process-gateway.js';

const gateway = gatewaysPerTest();
const NOTHING = { files: 0, blobs: 0, spooled: 0 };

/** A multipart form of `files` (name, bytes) under `file`, and `fields`. */
function form(files: [string, Buffer][], fields: Record<string, string> = {}): FormData {
  const body = new FormData();
  for (const [name, value] of Object.entries(fields)) body.append(name, value);
  for (const [name, bytes] of files) body.append('file', new Blob([bytes]), name);
  return body;
}

/** A body of unknown length, sent chunked: the gateway can only count it as it streams. */
function streamed(bytes: Buffer): RequestInit {
  const body = new ReadableStream({
    start(controller) {
      for (let at = 0; at < bytes.length; at += 1024)
        controller.enqueue(bytes.subarray(at, at + 1024));
      controller.close();
    },
  });
  return { method: 'PUT', body, duplex: 'half' } as RequestInit;
}

describe('PUT /upload/:filename', () => {
  it('stores the file: 201 with the file, its Location, three copies, and its jobs queued', async () => {
    const gw = await gateway();
    const before = Date.now();
    const res = await gw.request('/upload/photo.jpg?max_downloads=5&ttl=2h', {
      method: 'PUT',
      body: PHOTO,
    });
    expect(res.status).toBe(201);
    const file = (await res.json()) as UploadAnswer;
    expect(res.headers.get('location')).toBe(`${gw.url}/files/${file.id}`);
    expect(file).toMatchObject({
      name: 'photo.jpg',
      size: PHOTO.length,
      content_type: 'image/jpeg',
      sha256: sha256(PHOTO),
      status: 'active',
      max_downloads: 5,
      downloads_used: 0,
      downloads_left: 5,
      url: `${gw.url}/download/${file.id}`,
      share_url: `${gw.url}/s/${file.id}`,
      delete_token: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/),
      processing: { state: 'pending' },
    });
    const expiresAt = Date.parse(file.expires_at);
    expect(expiresAt - before).toBeGreaterThanOrEqual(2 * 3600_000);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(2 * 3600_000);
    expect(file.replicas.map((r) => r.state)).toEqual(['ok', 'ok', 'ok']);

    expect(await gw.store.getFile(file.id)).toMatchObject({
      state: 'committed',
      size: PHOTO.length,
    });
    expect(gw.nodes.holders(file.id).sort()).toEqual(file.replicas.map((r) => r.node).sort());
    for (const node of gw.nodes.holders(file.id))
      expect(gw.nodes.blobs.get(node)!.get(file.id)).toEqual(PHOTO);
    // Its deletion at expiry, and the worker's variants.
    const { names } = gw.jobs;
    expect(gw.jobs.published).toEqual(
      expect.arrayContaining([
        { queue: names.fileDelete, body: { fileId: file.id, due: expiresAt }, due: expiresAt },
        { queue: names.imageProcess, body: { fileId: file.id }, due: undefined },
      ]),
    );
    expect((await gw.holdings()).spooled).toBe(0);
  });

  it('takes DEFAULT_MAX_DOWNLOADS and DEFAULT_TTL_SECONDS when the upload does not say', async () => {
    const gw = await gateway({ DEFAULT_MAX_DOWNLOADS: '7', DEFAULT_TTL_SECONDS: '600' });
    const file = await gw.upload(PNG, { name: 'alpha.png' });
    expect(file).toMatchObject({ max_downloads: 7, content_type: 'image/png' });
    expect(Date.parse(file.expires_at) - Date.now()).toBeGreaterThan(590_000);
    expect(Date.parse(file.expires_at) - Date.now()).toBeLessThanOrEqual(600_000);
  });

  it('answers 413 for a file over MAX_UPLOAD_BYTES, declared or streamed, and keeps nothing', async () => {
    const gw = await gateway({ MAX_UPLOAD_BYTES: '10000' });
    const declared = await gw.request('/upload/photo.jpg', { method: 'PUT', body: PHOTO });
    await expectError(declared, 413, 'PAYLOAD_TOO_LARGE');
    await expectError(
      await gw.request('/upload/photo.jpg', streamed(PHOTO)),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expect(await gw.holdings()).toEqual(NOTHING);
    // At the limit exactly, it is stored.
    await gw.upload(PHOTO.subarray(0, 10000));
  });

  it('answers 415 for bytes that are not an allowed type, and keeps nothing', async () => {
    const gw = await gateway();
    const res = await gw.request('/upload/notes.txt', {
      method: 'PUT',
      body: Buffer.from('plain text, not an image\n'.repeat(20)),
    });
    await expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    // The name does not make an image of it either.
    const named = await gw.request('/upload/fake.jpg', { method: 'PUT', body: Buffer.from('hi') });
    await expectError(named, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(await gw.holdings()).toEqual(NOTHING);
  });

  it('answers 400 naming a bad option, before storing anything', async () => {
    const gw = await gateway({ MAX_DOWNLOADS_LIMIT: '10', MAX_TTL_SECONDS: '3600' });
    for (const query of [
      'max_downloads=abc',
      'max_downloads=-1',
      'max_downloads=11',
      'ttl=0',
      'ttl=2h',
    ]) {
      const res = await gw.request(`/upload/photo.jpg?${query}`, { method: 'PUT', body: PHOTO });
      await expectError(res, 400, 'INVALID_OPTION');
    }
    await expectError(
      await gw.request('/upload', { method: 'PUT', body: PHOTO }),
      400,
      'MISSING_FILENAME',
    );
    const empty = await gw.request('/upload/empty.jpg', { method: 'PUT', body: Buffer.alloc(0) });
    await expectError(empty, 400, 'EMPTY_FILE');
    expect(await gw.holdings()).toEqual(NOTHING);
  });

  it('answers 503 WRITE_QUORUM_FAILED when fewer than WRITE_QUORUM copies are stored, and keeps nothing', async () => {
    const gw = await gateway();
    gw.replicator.failing.add('node1').add('node2');
    const res = await gw.request('/upload/photo.jpg', { method: 'PUT', body: PHOTO });
    await expectError(res, 503, 'WRITE_QUORUM_FAILED');
    expect(res.headers.get('retry-after')).toBe('2');
    expect(await gw.holdings()).toEqual(NOTHING);
  });

  it('answers 503 NOT_ENOUGH_NODES when fewer than WRITE_QUORUM nodes are online', async () => {
    const gw = await gateway();
    gw.registry.status.set('node1', 'offline').set('node2', 'offline');
    const res = await gw.request('/upload/photo.jpg', { method: 'PUT', body: PHOTO });
    await expectError(res, 503, 'NOT_ENOUGH_NODES');
    expect(await gw.holdings()).toEqual(NOTHING);
  });

  it('stores a file a copy short (quorum reached) and queues its repair', async () => {
    const gw = await gateway();
    gw.replicator.failing.add('node3');
    const file = await gw.upload();
    expect(file.replicas).toContainEqual({ node: 'node3', state: 'missing' });
    await expect
      .poll(() => gw.jobs.to(gw.jobs.names.replicaRepair))
      .toEqual([{ fileId: file.id, key: file.id }]);
  });
});

describe('POST /upload (multipart)', () => {
  it('stores one file: 201 with the file and its Location; form fields set the options', async () => {
    const gw = await gateway();
    const res = await gw.request('/upload', {
      method: 'POST',
      body: form([['photo.jpg', PHOTO]], { max_downloads: '2', ttl: '30m' }),
    });
    expect(res.status).toBe(201);
    const file = (await res.json()) as UploadAnswer;
    expect(res.headers.get('location')).toBe(`${gw.url}/files/${file.id}`);
    expect(file).toMatchObject({
      name: 'photo.jpg',
      size: PHOTO.length,
      sha256: sha256(PHOTO),
      max_downloads: 2,
      delete_token: expect.any(String),
    });
    expect(Date.parse(file.expires_at) - Date.now()).toBeLessThanOrEqual(1800_000);
    expect(await gw.store.getFile(file.id)).toMatchObject({ state: 'committed' });
  });

  it('takes options from fields sent after the file too', async () => {
    const gw = await gateway();
    const body = new FormData();
    body.append('file', new Blob([PHOTO]), 'photo.jpg');
    body.append('max_downloads', '9');
    const res = await gw.request('/upload', { method: 'POST', body });
    expect(res.status).toBe(201);
    const file = (await res.json()) as UploadAnswer;
    expect(file.max_downloads).toBe(9);
    expect(await gw.store.getFile(file.id)).toMatchObject({ maxDownloads: 9 });
  });

  it('stores several files: 201 with {files}, no Location', async () => {
    const gw = await gateway();
    const res = await gw.request('/upload?max_downloads=4', {
      method: 'POST',
      body: form([
        ['photo.jpg', PHOTO],
        ['alpha.png', PNG],
      ]),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBeNull();
    const { files } = (await res.json()) as { files: UploadAnswer[] };
    expect(files.map((f) => [f.name, f.sha256, f.max_downloads])).toEqual([
      ['photo.jpg', sha256(PHOTO), 4],
      ['alpha.png', sha256(PNG), 4],
    ]);
    for (const f of files)
      expect(await gw.store.getFile(f.id)).toMatchObject({ state: 'committed' });
  });

  it('stores all of a request or none: one file over the limit is 413 and keeps the others out', async () => {
    const gw = await gateway({ MAX_UPLOAD_BYTES: '10000' });
    const res = await gw.request('/upload', {
      method: 'POST',
      body: form([
        ['alpha.png', PNG],
        ['photo.jpg', PHOTO],
      ]),
    });
    await expectError(res, 413, 'PAYLOAD_TOO_LARGE');
    expect(await gw.holdings()).toEqual(NOTHING);
  });

  it('answers 413 for more files than MAX_FILES_PER_UPLOAD, and keeps nothing', async () => {
    const gw = await gateway({ MAX_FILES_PER_UPLOAD: '1' });
    const res = await gw.request('/upload', {
      method: 'POST',
      body: form([
        ['alpha.png', PNG],
        ['photo.jpg', PHOTO],
      ]),
    });
    await expectError(res, 413, 'PAYLOAD_TOO_LARGE');
    expect(await gw.holdings()).toEqual(NOTHING);
  });

  it('answers 415 for a part that is not an image', async () => {
    const gw = await gateway();
    const res = await gw.request('/upload', {
      method: 'POST',
      body: form([['notes.txt', Buffer.from('not an image at all')]]),
    });
    await expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(await gw.holdings()).toEqual(NOTHING);
  });

  it('answers 400 for what is not a form of files', async () => {
    const gw = await gateway();
    const raw = await gw.request('/upload', { method: 'POST', body: PHOTO });
    await expectError(raw, 400, 'NOT_MULTIPART');
    const empty = await gw.request('/upload', { method: 'POST', body: form([], { ttl: '1h' }) });
    await expectError(empty, 400, 'NO_FILE');
    const text = await gw.request('/upload', { method: 'POST', body: form([], { file: 'x' }) });
    await expectError(text, 400, 'NO_FILE');
    const elsewhere = new FormData();
    elsewhere.append('photo', new Blob([PHOTO]), 'photo.jpg');
    const wrongField = await gw.request('/upload', { method: 'POST', body: elsewhere });
    await expectError(wrongField, 400, 'UNEXPECTED_FIELD');
    const badOption = await gw.request('/upload', {
      method: 'POST',
      body: form([['photo.jpg', PHOTO]], { max_downloads: 'lots' }),
    });
    await expectError(badOption, 400, 'INVALID_OPTION');
    expect(await gw.holdings()).toEqual(NOTHING);
  });
});

/**
 * Resumable uploads (tus 1.0 at /tus/) against a real cluster, on SQLite and
 * on PostgreSQL metadata: tus-js-client end to end, the protocol's edge cases
 * (409, 460, 413, termination, expiry), the per-client limit, an upload
 * continued on another gateway, and storage nodes lost mid-upload.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { request } from 'undici';
import * as tus from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  METADATA_KINDS,
  fixture,
  partsOnNodes as partsOfFile,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';

const LIMIT = 32 * 1024 * 1024;
let cluster: Cluster;
let shortLived: string; // a gateway whose incomplete uploads expire after 2 s
let strict: string; // a gateway that trusts X-Forwarded-For and allows 2 uploads per client

const TUS = { 'tus-resumable': '1.0.0' };

/** A JPEG of `size` bytes: the fixture's head (so its type is image/jpeg), then noise. */
function jpeg(size: number): Buffer {
  const head = fixture('photo.jpg');
  return Buffer.concat([head, randomBytes(Math.max(0, size - head.length))]).subarray(0, size);
}

function metadata(o: Record<string, string>): string {
  return Object.entries(o)
    .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
    .join(',');
}

/** Creates an upload of `length` bytes (null: deferred). */
async function create(base: string, length: number | null, extra: Record<string, string> = {}) {
  const res = await request(`${base}/tus/`, {
    method: 'POST',
    headers: {
      ...TUS,
      ...(length === null ? { 'upload-defer-length': '1' } : { 'upload-length': String(length) }),
      'upload-metadata': metadata({ filename: 'big.jpg' }),
      ...extra,
    },
  });
  const body = await res.body.text();
  return { status: res.statusCode, location: res.headers.location as string | undefined, body };
}

async function patch(
  url: string,
  offset: number,
  data: Buffer,
  extra: Record<string, string> = {},
) {
  const res = await request(url, {
    method: 'PATCH',
    headers: {
      ...TUS,
      'upload-offset': String(offset),
      'content-type': 'application/offset+octet-stream',
      ...extra,
    },
    body: data,
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : null };
}

/**
 * A PATCH that declares `length` bytes and sends none: the gateway must answer
 * from Content-Length alone (a body it refuses is never read, so none is sent
 * here: a client still writing when the answer comes may see the connection
 * reset instead of the answer).
 */
function patchDeclaring(
  url: string,
  offset: number,
  length: number,
): Promise<{ status: number; body: { error: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'PATCH',
      headers: {
        ...TUS,
        'upload-offset': String(offset),
        'content-type': 'application/offset+octet-stream',
        'content-length': String(length),
      },
    });
    req.on('response', async (res) => {
      let text = '';
      for await (const chunk of res) text += chunk;
      req.destroy();
      resolve({ status: res.statusCode!, body: JSON.parse(text) });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

async function head(url: string) {
  const res = await request(url, { method: 'HEAD', headers: TUS });
  await res.body.dump();
  return { status: res.statusCode, offset: Number(res.headers['upload-offset']) };
}

/** The id of the file the upload at `uploadUrl` becomes. */
async function fileIdOf(uploadUrl: string): Promise<string> {
  const [row] = await cluster.query<{ file_id: string }>(
    `SELECT file_id FROM resumable_uploads WHERE id = '${uploadUrl.split('/').pop()}'`,
  );
  if (!row) throw new Error(`no upload ${uploadUrl}`);
  return row.file_id;
}

const partsOnNodes = (fileId: string) => partsOfFile(cluster, fileId);

/** Part rows of the upload at `uploadUrl`. */
const partRows = (uploadUrl: string) =>
  cluster.query<{ key: string }>(
    `SELECT key FROM upload_parts WHERE upload_id = '${uploadUrl.split('/').pop()}'`,
  );

function tusUpload(
  data: Buffer,
  o: Partial<tus.UploadOptions> & { endpoint: string },
): Promise<tus.Upload> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      chunkSize: 1024 * 1024,
      retryDelays: [100, 500, 1000],
      metadata: { filename: 'photo.jpg', max_downloads: '1' },
      ...o,
      onSuccess: () => resolve(upload),
      onError: reject,
    });
    upload.start();
  });
}

describe.each(METADATA_KINDS)('resumable uploads (tus, %s metadata)', (metadata) => {
  beforeAll(async () => {
    cluster = await startCluster({
      metadata,
      worker: true,
      env: { MAX_UPLOAD_BYTES: String(LIMIT), SWEEP_SCHEDULE: '* * * * * *' },
    });
    shortLived = await cluster.startGateway('gw-short', { RESUMABLE_UPLOAD_EXPIRY_SECONDS: '2' });
    strict = await cluster.startGateway('gw-strict', {
      TRUST_PROXY: 'true',
      RESUMABLE_UPLOADS_PER_CLIENT: '2',
    });
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('tus-js-client uploads in chunks; the file is like any upload, its parts are gone', async () => {
    const data = jpeg(3 * 1024 * 1024 + 12345);
    const upload = await tusUpload(data, { endpoint: `${cluster.gatewayUrl}/tus/` });
    const res = await request(upload.url!);
    expect(res.statusCode).toBe(200);
    const file = (await res.body.json()) as Record<string, unknown>;
    expect(file).toMatchObject({
      name: 'photo.jpg',
      size: data.length,
      content_type: 'image/jpeg',
      sha256: sha256(data),
      max_downloads: 1,
    });
    expect(typeof file.delete_token).toBe('string');
    expect((file.replicas as { state: string }[]).filter((r) => r.state === 'ok')).toHaveLength(3);
    const download = await request(file.url as string);
    expect(download.statusCode).toBe(200);
    expect(sha256(Buffer.from(await download.body.arrayBuffer()))).toBe(sha256(data));
    // Removed right after the answer.
    await waitFor(
      'parts removed',
      async () => (await partsOnNodes(file.id as string)).length === 0,
      10_000,
    );
    await waitFor(
      'part rows forgotten',
      async () => (await partRows(upload.url!)).length === 0,
      10_000,
    );
    // The delete token works like an upload's.
    const del = await request(`${cluster.gatewayUrl}/files/${file.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': file.delete_token as string },
    });
    expect(del.statusCode).toBe(204);
  });

  it('answers HEAD through the gateway cleanly, found or gone (headers written once)', async () => {
    const { location } = await create(cluster.gatewayUrl, 1024);
    expect((await head(location!)).status).toBe(200);
    expect((await head(`${cluster.gatewayUrl}/tus/AAAAAAAAAAAAAAAAAAAAAA`)).status).toBe(404);
    // Node prints this to stderr when a response's headers are written a second time.
    await new Promise((r) => setTimeout(r, 200));
    expect(readFileSync(cluster.gateway!.logFile, 'utf8')).not.toContain('ERR_HTTP_HEADERS_SENT');
  });

  it('answers a PATCH at the wrong offset with 409', async () => {
    const { location } = await create(cluster.gatewayUrl, 2 * 1024 * 1024);
    const data = jpeg(1024 * 1024);
    expect((await patch(location!, 0, data)).status).toBe(204);
    const wrong = await patch(location!, 4096, data);
    expect(wrong.status).toBe(409);
    expect(wrong.body.error.code).toBe('UPLOAD_OFFSET_MISMATCH');
    expect((await head(location!)).offset).toBe(data.length);
  });

  it('discards a chunk whose checksum does not match (460), keeps one that matches', async () => {
    const { location } = await create(cluster.gatewayUrl, 2 * 1024 * 1024);
    const fileId = await fileIdOf(location!);
    const data = jpeg(1024 * 1024);
    const wrongSum = createHash('sha1').update('something else').digest('base64');
    const bad = await patch(location!, 0, data, { 'upload-checksum': `sha1 ${wrongSum}` });
    expect(bad.status).toBe(460);
    expect(bad.body.error.code).toBe('CHECKSUM_MISMATCH');
    expect((await head(location!)).offset).toBe(0);
    expect(await partsOnNodes(fileId)).toEqual([]);
    const rightSum = createHash('sha256').update(data).digest('base64');
    const good = await patch(location!, 0, data, { 'upload-checksum': `sha256 ${rightSum}` });
    expect(good.status).toBe(204);
    expect(Number(good.headers['upload-offset'])).toBe(data.length);
    const unknown = await patch(location!, data.length, data, { 'upload-checksum': 'crc32 AAAA' });
    expect(unknown.status).toBe(400);
    const options = await request(`${cluster.gatewayUrl}/tus/`, { method: 'OPTIONS' });
    await options.body.dump();
    expect(options.headers['tus-extension']).toContain('checksum');
    expect(options.headers['tus-checksum-algorithm']).toContain('sha256');
  });

  it('refuses an Upload-Length over the limit (413), and a deferred length once the offset passes it', async () => {
    const over = await create(cluster.gatewayUrl, LIMIT + 1);
    expect(over.status).toBe(413);
    // Named as POST /upload names it: the limit, in bytes.
    expect(JSON.parse(over.body).error).toEqual({
      code: 'PAYLOAD_TOO_LARGE',
      message: `the file is larger than the upload limit of ${LIMIT} bytes`,
    });
    const deferred = await create(cluster.gatewayUrl, 0, { 'upload-defer-length': '1' });
    // Upload-Length and Upload-Defer-Length together: 400.
    expect(deferred.status).toBe(400);
    const res = await request(`${cluster.gatewayUrl}/tus/`, {
      method: 'POST',
      headers: { ...TUS, 'upload-defer-length': '1' },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(201);
    const url = res.headers.location as string;
    const big = await patchDeclaring(url, 0, LIMIT + 1024);
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(big.body.error.message).toContain(`upload limit of ${LIMIT} bytes`);
    expect((await head(url)).offset).toBe(0);
  });

  it('refuses a type that is not allowed (415) and ends that upload', async () => {
    const { location } = await create(cluster.gatewayUrl, 64 * 1024);
    const fileId = await fileIdOf(location!);
    const text = await patch(location!, 0, Buffer.alloc(64 * 1024, 'plain text, not an image '));
    expect(text.status).toBe(415);
    expect((await head(location!)).status).toBe(404);
    await waitFor('no part left', async () => (await partsOnNodes(fileId)).length === 0, 10_000);
  });

  it('termination removes the upload and its parts', async () => {
    const { location } = await create(cluster.gatewayUrl, 3 * 1024 * 1024);
    const fileId = await fileIdOf(location!);
    expect((await patch(location!, 0, jpeg(1024 * 1024))).status).toBe(204);
    expect(await partsOnNodes(fileId)).not.toEqual([]);
    const del = await request(location!, { method: 'DELETE', headers: TUS });
    await del.body.dump();
    expect(del.statusCode).toBe(204);
    expect(await partsOnNodes(fileId)).toEqual([]);
    expect(await partRows(location!)).toEqual([]);
    expect((await head(location!)).status).toBe(404);
  });

  it('an upload that expired answers 410, then the worker removes it and its parts (404)', async () => {
    const { location } = await create(shortLived, 3 * 1024 * 1024);
    const fileId = await fileIdOf(location!);
    expect((await patch(location!, 0, jpeg(1024 * 1024))).status).toBe(204);
    expect(await partsOnNodes(fileId)).not.toEqual([]);
    // The worker held still, so the expired upload is seen before the sweep removes it.
    const worker = cluster.proc('worker')!.proc.pid!;
    process.kill(worker, 'SIGSTOP');
    try {
      await new Promise((r) => setTimeout(r, 2200));
      expect((await head(location!)).status).toBe(410);
      const late = await patch(location!, 1024 * 1024, jpeg(1024));
      expect(late.status).toBe(410);
      expect(late.body.error.code).toBe('UPLOAD_EXPIRED');
    } finally {
      process.kill(worker, 'SIGCONT');
    }
    await waitFor('parts swept', async () => (await partsOnNodes(fileId)).length === 0, 15_000);
    await waitFor('row swept', async () => (await head(location!)).status === 404, 10_000);
    await waitFor('part rows swept', async () => (await partRows(location!)).length === 0, 10_000);
  });

  it('holds each client to its number of unfinished uploads (429)', async () => {
    const client = { 'x-forwarded-for': '203.0.113.7' };
    expect((await create(strict, 1024, client)).status).toBe(201);
    expect((await create(strict, 1024, client)).status).toBe(201);
    const third = await create(strict, 1024, client);
    expect(third.status).toBe(429);
    expect(JSON.parse(third.body).error.code).toBe('RATE_LIMITED');
    // Another client is not held to it.
    expect((await create(strict, 1024, { 'x-forwarded-for': '203.0.113.8' })).status).toBe(201);
  });

  it('a storage node killed mid-upload, back with an empty disk: the upload completes, the node gets its copy by repair', async () => {
    const MiB = 1024 * 1024;
    const data = jpeg(4 * MiB + 777);
    const { location } = await create(cluster.gatewayUrl, data.length);
    const fileId = await fileIdOf(location!);
    const send = (from: number, to?: number) => patch(location!, from, data.subarray(from, to));
    expect((await send(0, MiB)).status).toBe(204);
    const node = cluster.nodes[2]!;
    await cluster.kill(node.id);
    await rm(node.dataDir, { recursive: true, force: true });
    expect((await send(MiB, 2 * MiB)).status).toBe(204);
    // Back with nothing: every later part would leave a gap there, so it refuses them.
    await cluster.startNode(node.id);
    expect((await send(2 * MiB, 3 * MiB)).status).toBe(204);
    expect((await send(3 * MiB)).status).toBe(204);
    const fileOf = async () =>
      (await (await request(location!)).body.json()) as {
        sha256: string;
        url: string;
        replicas: { node: string; state: string }[];
      };
    expect((await fileOf()).sha256).toBe(sha256(data));
    await waitFor(
      "three copies, the restarted node's by repair",
      async () => (await fileOf()).replicas.filter((r) => r.state === 'ok').length === 3,
      30_000,
    );
    const download = await request((await fileOf()).url);
    expect(sha256(Buffer.from(await download.body.arrayBuffer()))).toBe(sha256(data));
    await waitFor(
      'nothing staged left',
      async () => (await partsOnNodes(fileId)).length === 0,
      15_000,
    );
  });

  it('completes when only one node holds every part: a copy of its blob makes the quorum', async () => {
    const MiB = 1024 * 1024;
    const data = jpeg(3 * MiB);
    // Length deferred, so the upload can end (a PATCH declaring it) after a node lost its copy.
    const { location } = await create(cluster.gatewayUrl, null);
    const fileId = await fileIdOf(location!);
    const send = (from: number, to: number) => patch(location!, from, data.subarray(from, to));
    const [, second, third] = cluster.nodes;
    expect((await send(0, MiB)).status).toBe(204);
    await cluster.kill(third!.id); // misses the second part, then refuses the third (a gap)
    expect((await send(MiB, 2 * MiB)).status).toBe(204);
    await cluster.startNode(third!.id);
    expect((await send(2 * MiB, 3 * MiB)).status).toBe(204);
    // The other node with every part loses them all.
    await cluster.kill(second!.id);
    await rm(second!.dataDir, { recursive: true, force: true });
    await cluster.startNode(second!.id);
    const end = await patch(location!, 3 * MiB, Buffer.alloc(0), {
      'upload-length': String(3 * MiB),
    });
    expect(end.status).toBe(204);
    const file = (await (await request(location!)).body.json()) as {
      sha256: string;
      url: string;
      replicas: { node: string; state: string }[];
    };
    expect(file.sha256).toBe(sha256(data));
    expect(file.replicas.filter((r) => r.state === 'ok').length).toBeGreaterThanOrEqual(2);
    const download = await request(file.url);
    expect(sha256(Buffer.from(await download.body.arrayBuffer()))).toBe(sha256(data));
    await waitFor(
      'nothing staged left',
      async () => (await partsOnNodes(fileId)).length === 0,
      15_000,
    );
  });

  it('continues on another gateway: parts are on the nodes, the upload in the metadata', async () => {
    const data = jpeg(2 * 1024 * 1024 + 7);
    const { location } = await create(cluster.gatewayUrl, data.length);
    const half = 1024 * 1024;
    expect((await patch(location!, 0, data.subarray(0, half))).status).toBe(204);
    const elsewhere = location!.replace(cluster.gatewayUrl, strict);
    expect((await head(elsewhere)).offset).toBe(half);
    const last = await patch(elsewhere, half, data.subarray(half));
    expect(last.status).toBe(204);
    const fileId = last.headers['trove-file-id'] as string;
    const info = (await (await request(`${cluster.gatewayUrl}/files/${fileId}`)).body.json()) as {
      sha256: string;
    };
    expect(info.sha256).toBe(sha256(data));
  });
});

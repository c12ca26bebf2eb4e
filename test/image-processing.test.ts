/**
 * Image processing end to end: real images made with sharp, uploaded to a
 * real cluster (three nodes, a gateway, a worker), their variants made by
 * the worker, stored three times and served by the gateway; broken images
 * end `failed` with a reason, once; a worker killed mid-job leaves exactly
 * one set of variants after its restart; variants leave with their file.
 */
import Database from 'better-sqlite3';
import amqp from 'amqplib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  filesUnder,
  queryDb,
  queueCountsAll,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';
import { metricValue, scrape } from './metrics-text.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

let cluster: Cluster;
beforeAll(async () => {
  // PDFs are allowed too, to see a non-image skipped.
  cluster = await startCluster({
    worker: true,
    env: { ALLOWED_TYPES: 'image/*,application/pdf' },
  });
});
afterAll(async () => {
  await cluster?.stop();
});
const showLogs = () => onTestFailed(() => console.log(cluster.logTail(60)));

interface FileJson {
  id: string;
  delete_token: string;
  processing: {
    state: 'pending' | 'done' | 'failed' | 'skipped';
    reason?: string;
    variants?: Record<
      string,
      { url: string; size: number; width: number; height: number; content_type: string }
    >;
  };
}

async function upload(data: Buffer, name: string, query = 'max_downloads=0'): Promise<FileJson> {
  const res = await fetch(`${cluster.gatewayUrl}/upload/${name}?${query}`, {
    method: 'PUT',
    body: data,
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as FileJson;
}

const fileInfo = async (id: string) =>
  (await (await fetch(`${cluster.gatewayUrl}/files/${id}`)).json()) as FileJson;

/** The file once the worker is done with it (any state but pending). */
const settled = (id: string) =>
  waitFor(
    `${id} processed`,
    async () => {
      const f = await fileInfo(id);
      return f.processing.state !== 'pending' && f;
    },
    30_000,
  );

async function get(path: string): Promise<{ res: Response; body: Buffer }> {
  const res = await fetch(`${cluster.gatewayUrl}${path}`);
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

const errorCode = (body: Buffer) => (JSON.parse(body.toString()) as any).error.code as string;

/** images.process jobs the worker has run to their end and acknowledged (GET /metrics). */
const processJobsDone = async () =>
  metricValue(await scrape(cluster.proc('worker')!.metricsUrl!), 'trove_jobs_total', {
    job: 'images.process',
    outcome: 'done',
  });

/** How many times the worker logged `msg` about file `id`. */
function workerLogCount(id: string, msg: string): number {
  return readFileSync(cluster.proc('worker')!.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`"id":"${id}"`) && l.includes(`"msg":"${msg}"`)).length;
}

/** Per node, the blob files of `key` on its disk (names are `<key>@<sha256>`). */
async function blobFiles(key: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const node of cluster.nodes) {
    out[node.id] = (await filesUnder(join(node.dataDir, 'blobs')))
      .map((p) => p.split('/').pop()!)
      .filter((name) => name.startsWith(`${key}@`));
  }
  return out;
}

interface VariantRow {
  variant: string;
  sha256: string;
  size: number;
  width: number;
  height: number;
}
const variantRows = (id: string) =>
  queryDb<VariantRow>(
    cluster,
    `SELECT variant, sha256, size, width, height FROM variants WHERE file_id = '${id}' ORDER BY variant`,
  );
const replicaRows = (key: string) =>
  queryDb<{ node: string; state: string }>(
    cluster,
    `SELECT node, state FROM replicas WHERE key = '${key}' ORDER BY node`,
  );

/** Exactly one verified set of variants: two rows, three ok replicas each, one blob per node. */
async function expectOneSetOfVariants(id: string): Promise<VariantRow[]> {
  const rows = variantRows(id);
  expect(rows.map((r) => r.variant)).toEqual(['compressed', 'thumb']);
  for (const row of rows) {
    const key = `${id}.${row.variant}`;
    expect(replicaRows(key)).toEqual(cluster.nodes.map((n) => ({ node: n.id, state: 'ok' })));
    const onDisk = await blobFiles(key);
    for (const node of cluster.nodes) expect(onDisk[node.id]).toEqual([`${key}@${row.sha256}`]);
  }
  return rows;
}

// --- the images -----------------------------------------------------------------------------

/**
 * Stored 2×1 landscape with EXIF orientation 6 (rotate 90° clockwise to view):
 * viewed it is 1×2 portrait, its red left half on top, its blue right half below.
 */
async function orientedJpeg(width: number): Promise<Buffer> {
  const half = width / 2;
  const blue = await sharp({
    create: { width: half, height: half, channels: 3, background: '#0000ff' },
  })
    .png()
    .toBuffer();
  return sharp({ create: { width, height: half, channels: 3, background: '#ff0000' } })
    .composite([{ input: blue, left: half, top: 0 }])
    .jpeg({ quality: 90 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

const alphaPng = () =>
  sharp({
    create: {
      width: 400,
      height: 300,
      channels: 4,
      background: { r: 0, g: 128, b: 0, alpha: 0.4 },
    },
  })
    .png()
    .toBuffer();

async function animatedGif(): Promise<Buffer> {
  const colours = ['#ff0000', '#00ff00', '#0000ff'];
  const frames = await Promise.all(
    colours.map((background) =>
      sharp({ create: { width: 64, height: 48, channels: 3, background } })
        .raw()
        .toBuffer(),
    ),
  );
  return sharp(Buffer.concat(frames), {
    raw: { width: 64, height: 48 * colours.length, channels: 3, pageHeight: 48 },
  })
    .gif({ loop: 0, delay: [100, 100, 100] })
    .toBuffer();
}

/** A photo-like JPEG (noise), cut in half: the header is whole, the scan data is not. */
async function truncatedJpeg(): Promise<Buffer> {
  const whole = await sharp({
    create: {
      width: 1200,
      height: 800,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma: 40 },
    },
  })
    .jpeg()
    .toBuffer();
  return whole.subarray(0, whole.length >> 1);
}

/** A valid 1×1 PNG whose header (CRC fixed up) claims 100000×100000 pixels: a decompression bomb. */
async function bombPng(): Promise<Buffer> {
  const png = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } })
    .png()
    .toBuffer();
  const bomb = Buffer.from(png);
  bomb.writeUInt32BE(100_000, 16); // IHDR width
  bomb.writeUInt32BE(100_000, 20); // IHDR height
  bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29); // CRC of "IHDR" + its 13 bytes
  return bomb;
}

/** A 2×2 BMP: an image to the gateway, a format sharp cannot read. */
function bmp(): Buffer {
  const pixels = Buffer.alloc(16, 0x80); // 2 rows of 2 BGR pixels, each row padded to 8 bytes
  const header = Buffer.alloc(54);
  header.write('BM', 0);
  header.writeUInt32LE(54 + pixels.length, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(2, 18);
  header.writeInt32LE(2, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  header.writeUInt32LE(pixels.length, 34);
  return Buffer.concat([header, pixels]);
}

/** A large photo-like JPEG that takes the worker about a second to process. */
async function bigJpeg(): Promise<Buffer> {
  const base = await sharp({
    create: {
      width: 600,
      height: 400,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma: 60 },
    },
  })
    .png()
    .toBuffer();
  return sharp(base).resize(6000, 4000, { kernel: 'cubic' }).jpeg({ quality: 90 }).toBuffer();
}

/** The mean colour of a band of rows of an image, as [r, g, b]. */
async function bandColour(image: Buffer, top: number, height: number): Promise<number[]> {
  const meta = await sharp(image).metadata();
  const { data } = await sharp(image)
    .extract({ left: 0, top, width: meta.width!, height })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += 3) for (let c = 0; c < 3; c++) sum[c]! += data[i + c]!;
  return sum.map((s) => s / (data.length / 3));
}

async function publishJob(fileId: string): Promise<void> {
  const conn = await amqp.connect(AMQP_URL);
  try {
    const ch = await conn.createConfirmChannel();
    ch.sendToQueue(
      `${cluster.clusterName}.images.process`,
      Buffer.from(JSON.stringify({ fileId })),
      {
        persistent: true,
      },
    );
    await ch.waitForConfirms();
  } finally {
    await conn.close();
  }
}

// --- the tests ------------------------------------------------------------------------------

describe('image processing', () => {
  it('makes an upright thumbnail and compressed copy of an EXIF-rotated JPEG', async () => {
    showLogs();
    const up = await upload(await orientedJpeg(3000), 'rotated.jpg');
    expect(up.processing).toEqual({ state: 'pending' });
    const file = await settled(up.id);
    expect(file.processing.state).toBe('done');
    const { thumbnail, compressed } = file.processing.variants!;
    // Viewed portrait: 1500×3000 → 128×256 and 1024×2048.
    expect(thumbnail).toMatchObject({ width: 128, height: 256, content_type: 'image/webp' });
    expect(compressed).toMatchObject({ width: 1024, height: 2048, content_type: 'image/webp' });
    expect(thumbnail!.url).toBe(`${cluster.gatewayUrl}/files/${up.id}/thumbnail`);
    expect(compressed!.url).toBe(`${cluster.gatewayUrl}/download/${up.id}?variant=compressed`);

    const thumb = await get(`/files/${up.id}/thumbnail`);
    expect(thumb.res.status).toBe(200);
    expect(thumb.res.headers.get('content-type')).toBe('image/webp');
    expect(thumb.body.length).toBe(thumbnail!.size);
    const meta = await sharp(thumb.body).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 128, 256]);
    // Turned the right way: the red half on top, the blue half below.
    const [top, bottom] = [
      await bandColour(thumb.body, 0, 100),
      await bandColour(thumb.body, 156, 100),
    ];
    expect(top[0]).toBeGreaterThan(200);
    expect(top[2]).toBeLessThan(60);
    expect(bottom[2]).toBeGreaterThan(200);
    expect(bottom[0]).toBeLessThan(60);

    const copy = await get(`/download/${up.id}?variant=compressed`);
    expect(copy.res.status).toBe(200);
    expect(copy.res.headers.get('content-type')).toBe('image/webp');
    const copyMeta = await sharp(copy.body).metadata();
    expect([copyMeta.width, copyMeta.height]).toEqual([1024, 2048]);
    // Metadata stripped: no EXIF, hence no orientation left to apply twice.
    expect(copyMeta.exif).toBeUndefined();
    expect(copyMeta.orientation).toBeUndefined();
    await expectOneSetOfVariants(up.id);
  });

  it('keeps the transparency of a PNG with alpha', async () => {
    showLogs();
    const up = await upload(await alphaPng(), 'alpha.png');
    const file = await settled(up.id);
    expect(file.processing.state).toBe('done');
    expect(file.processing.variants!.thumbnail).toMatchObject({ width: 256, height: 192 });
    // Smaller than 2048 px: the compressed copy keeps the size.
    expect(file.processing.variants!.compressed).toMatchObject({ width: 400, height: 300 });
    const thumb = await get(`/files/${up.id}/thumbnail`);
    const meta = await sharp(thumb.body).metadata();
    expect(meta.hasAlpha).toBe(true);
    const { data } = await sharp(thumb.body).raw().toBuffer({ resolveWithObject: true });
    expect(data[3]).toBeGreaterThan(80);
    expect(data[3]).toBeLessThan(125); // 0.4 × 255 ≈ 102, give or take the lossy encoding
  });

  it('makes a still thumbnail and an animated compressed copy of an animated GIF', async () => {
    showLogs();
    const up = await upload(await animatedGif(), 'anim.gif');
    const file = await settled(up.id);
    expect(file.processing.state).toBe('done');
    expect(file.processing.variants!.thumbnail).toMatchObject({ width: 64, height: 48 });
    expect(file.processing.variants!.compressed).toMatchObject({ width: 64, height: 48 });
    const thumb = await sharp((await get(`/files/${up.id}/thumbnail`)).body).metadata();
    expect(thumb.pages ?? 1).toBe(1);
    const copy = await sharp((await get(`/download/${up.id}?variant=compressed`)).body).metadata();
    expect([copy.format, copy.pages]).toEqual(['webp', 3]);
  });

  it('fails a truncated JPEG, a decompression bomb and an unsupported format with a reason, once', async () => {
    showLogs();
    const cases = [
      { name: 'cut.jpg', data: await truncatedJpeg(), reason: /^corrupt or truncated image: / },
      { name: 'bomb.png', data: await bombPng(), reason: /^too large: 100000×100000 pixels/ },
      { name: 'old.bmp', data: bmp(), reason: /unsupported image format/ },
    ];
    for (const c of cases) {
      const up = await upload(c.data, c.name);
      const file = await settled(up.id);
      expect(file.processing, c.name).toMatchObject({
        state: 'failed',
        reason: expect.stringMatching(c.reason),
      });
      expect(file.processing.variants).toBeUndefined();
      const thumb = await get(`/files/${up.id}/thumbnail`);
      expect(thumb.res.status).toBe(404);
      expect(errorCode(thumb.body)).toBe('NO_VARIANT');
      // The upload itself is untouched: the original still downloads, byte for byte.
      const original = await get(`/download/${up.id}`);
      expect(original.res.status).toBe(200);
      expect(original.body.equals(c.data)).toBe(true);
      // One attempt, acknowledged: no retry, no redelivery, no variant rows.
      expect(workerLogCount(up.id, 'processing image')).toBe(1);
      expect(variantRows(up.id)).toEqual([]);
    }
    expect(cluster.proc('worker')!.proc.exitCode).toBeNull();
    expect(cluster.errorLines('worker')).toEqual([]);
  });

  it('skips a file that is not an image', async () => {
    showLogs();
    const up = await upload(
      Buffer.from('%PDF-1.4\n%âãÏÓ\n1 0 obj <<>> endobj\n%%EOF\n'),
      'doc.pdf',
    );
    expect(up.processing).toEqual({ state: 'skipped' });
    expect((await fileInfo(up.id)).processing).toEqual({ state: 'skipped' });
    const thumb = await get(`/files/${up.id}/thumbnail`);
    expect([thumb.res.status, errorCode(thumb.body)]).toEqual([404, 'NO_VARIANT']);
    const copy = await get(`/download/${up.id}?variant=compressed`);
    expect([copy.res.status, errorCode(copy.body)]).toEqual([404, 'NO_VARIANT']);
  });

  it('counts the compressed copy as a download, never the thumbnail', async () => {
    showLogs();
    const up = await upload(await alphaPng(), 'counted.png', 'max_downloads=2');
    await settled(up.id);
    for (let i = 0; i < 3; i++)
      expect((await get(`/files/${up.id}/thumbnail`)).res.status).toBe(200);
    const copy = await get(`/download/${up.id}?variant=compressed`);
    expect(copy.res.status).toBe(200);
    expect(copy.res.headers.get('x-downloads-left')).toBe('1');
    expect((await get(`/download/${up.id}`)).res.headers.get('x-downloads-left')).toBe('0');
    const over = await get(`/download/${up.id}?variant=compressed`);
    expect([over.res.status, errorCode(over.body)]).toEqual([410, 'DOWNLOAD_LIMIT_REACHED']);
    // A used-up link keeps its thumbnail (it counts nothing); an unknown variant is a 400.
    expect((await get(`/files/${up.id}/thumbnail`)).res.status).toBe(200);
    const bad = await get(`/download/${up.id}?variant=huge`);
    expect([bad.res.status, errorCode(bad.body)]).toEqual([400, 'UNKNOWN_VARIANT']);
  });

  it('re-running a job gives the same variants, no duplicates', async () => {
    showLogs();
    const up = await upload(await orientedJpeg(800), 'again.jpg');
    await settled(up.id);
    const before = await expectOneSetOfVariants(up.id);
    // As if the job had never finished: pending again, and a second message.
    const db = new Database(cluster.dbPath);
    db.pragma('busy_timeout = 5000');
    db.prepare(`UPDATE files SET processing = 'pending' WHERE id = ?`).run(up.id);
    db.close();
    await publishJob(up.id);
    await waitFor('processed twice', async () => workerLogCount(up.id, 'image processed') === 2);
    expect(await expectOneSetOfVariants(up.id)).toEqual(before);
    // A job for a file already done changes nothing.
    const attempts = workerLogCount(up.id, 'processing image');
    const doneBefore = await processJobsDone();
    await publishJob(up.id);
    // Once the worker counted a job done and the broker has nothing of either
    // stage queued or in the worker's hands (a copy job the first stage might
    // have queued is published before that stage is acknowledged): all ran.
    await waitFor('the job run and acknowledged', async () => {
      if ((await processJobsDone()) === doneBefore) return false;
      const counts = queueCountsAll();
      return ['images.process', 'images.compress']
        .map((q) => counts.get(`${cluster.clusterName}.${q}`)!)
        .every((c) => c.ready + c.unacked === 0);
    });
    expect(workerLogCount(up.id, 'processing image')).toBe(attempts);
    expect(await expectOneSetOfVariants(up.id)).toEqual(before);
  });

  it('completes a job whose worker was killed mid-job after the restart, variants exactly once', async () => {
    showLogs();
    const up = await upload(await bigJpeg(), 'big.jpg');
    // The second stage, the compressed copy (seconds of work for 24 MP), is under way.
    await waitFor(
      'the worker on the copy',
      async () => workerLogCount(up.id, 'processing image') === 2,
    );
    await cluster.kill('worker', 'SIGKILL');
    // Killed mid-job: the thumbnail is recorded and served, the copy is not ready, the file pending.
    expect(
      queryDb<{ p: string }>(cluster, `SELECT processing AS p FROM files WHERE id = '${up.id}'`),
    ).toEqual([{ p: 'pending' }]);
    expect((await get(`/files/${up.id}/thumbnail`)).res.status).toBe(200);
    const copy = await get(`/download/${up.id}?variant=compressed`);
    expect([copy.res.status, errorCode(copy.body)]).toEqual([404, 'NOT_READY']);
    const pending = await fileInfo(up.id);
    expect(pending.processing.state).toBe('pending');
    expect(Object.keys(pending.processing.variants!)).toEqual(['thumbnail']);

    await cluster.startWorker();
    const file = await settled(up.id);
    expect(file.processing.state).toBe('done');
    expect(file.processing.variants!.compressed).toMatchObject({ width: 2048, height: 1365 });
    await expectOneSetOfVariants(up.id);
    expect((await get(`/files/${up.id}/thumbnail`)).res.status).toBe(200);
  });

  it('deletes the variants with their file when it expires', async () => {
    showLogs();
    const up = await upload(await alphaPng(), 'short.png', 'ttl=4');
    await settled(up.id);
    await expectOneSetOfVariants(up.id);
    const keys = [up.id, `${up.id}.thumb`, `${up.id}.compressed`];
    await waitFor(
      'every blob of the file gone from every node',
      async () => {
        for (const key of keys)
          if (Object.values(await blobFiles(key)).some((files) => files.length > 0)) return false;
        return true;
      },
      30_000,
    );
    expect(queryDb(cluster, `SELECT key FROM replicas WHERE file_id = '${up.id}'`)).toEqual([]);
    const thumb = await get(`/files/${up.id}/thumbnail`);
    expect([thumb.res.status, errorCode(thumb.body)]).toEqual([410, 'FILE_EXPIRED']);
  });
});

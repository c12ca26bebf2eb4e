/**
 * Direct processing against a real gateway: POST /process answers the
 * processed image, POST /batch a streamed ZIP, nothing stored. Small limits
 * (one processing slot, 3 images and 2 MB per batch, 1 MB per image) so
 * every refusal can be reached with small inputs.
 */
import { request as httpRequest } from 'node:http';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { fixture, jpegStream, queryDb, startCluster, waitFor, type Cluster } from './harness.js';

const MB = 1_000_000;
let cluster: Cluster;
/** 1600×1200 JPEG. */
let landscape: Buffer;
/** 400×200 pixels stored, EXIF orientation 6: upright it is 200×400. */
let rotated: Buffer;
/** 800×600 of noise: a JPEG of several hundred KB, slower to receive than a small one after it. */
let noisy: Buffer;

beforeAll(async () => {
  cluster = await startCluster({
    env: {
      PROCESS_CONCURRENCY: '1',
      MAX_UPLOAD_BYTES: '1MB',
      MAX_BATCH_FILES: '3',
      MAX_BATCH_BYTES: '2MB',
      MAX_INPUT_PIXELS: '4000000',
    },
  });
  landscape = await sharp({
    create: { width: 1600, height: 1200, channels: 3, background: '#3a6f9e' },
  })
    .jpeg()
    .toBuffer();
  rotated = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#c33' } })
    .withMetadata({ orientation: 6 })
    .jpeg()
    .toBuffer();
  noisy = await sharp({
    create: {
      width: 800,
      height: 600,
      channels: 3,
      background: '#000',
      noise: { type: 'gaussian', mean: 128, sigma: 50 },
    },
  })
    .jpeg({ quality: 95 })
    .toBuffer();
});
afterAll(async () => {
  await cluster?.stop();
});

function showLogsOnFailure() {
  onTestFailed(() => console.log(cluster.logTail()));
}

interface Part {
  data: Buffer;
  name?: string;
  field?: string;
}

function form(parts: Part[], fields: Record<string, string> = {}): FormData {
  const body = new FormData();
  for (const [k, v] of Object.entries(fields)) body.append(k, v);
  for (const p of parts) body.append(p.field ?? 'file', new Blob([p.data]), p.name ?? 'image.jpg');
  return body;
}

async function post(path: string, body: FormData | Buffer) {
  const res = await fetch(`${cluster.gatewayUrl}${path}`, { method: 'POST', body });
  const data = Buffer.from(await res.arrayBuffer());
  return { res, status: res.status, data, json: () => JSON.parse(data.toString()) as any };
}

async function expectError(
  reply: Awaited<ReturnType<typeof post>>,
  status: number,
  code: string,
  message?: RegExp,
) {
  expect(reply.status, reply.data.toString()).toBe(status);
  expect(reply.res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = reply.json();
  expect(body.error.code).toBe(code);
  if (message) expect(body.error.message).toMatch(message);
}

/** The entries of a ZIP, read from its central directory (stored entries: the bytes as they are). */
function unzip(zip: Buffer): Map<string, Buffer> {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('no end of central directory: not a complete ZIP');
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const entries = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`bad central header at ${at}`);
    const method = zip.readUInt16LE(at + 10);
    const size = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extra = zip.readUInt16LE(at + 30);
    const comment = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    expect(method, name).toBe(0); // stored
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    entries.set(name, zip.subarray(start, start + size));
    at += 46 + nameLength + extra + comment;
  }
  return entries;
}

/** A raw POST /process whose body stops after its first chunk until `open()` (a slow client). */
function slowProcess(data: Buffer) {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const body = new Readable({ read() {} });
  body.push(data.subarray(0, 1000));
  void opened.then(() => {
    body.push(data.subarray(1000));
    body.push(null);
  });
  const reply = request(`${cluster.gatewayUrl}/process?op=thumbnail`, { method: 'POST', body });
  return { reply, open };
}

describe('POST /process', () => {
  it('makes a 256 px WebP thumbnail of a multipart file by default', async () => {
    showLogsOnFailure();
    const r = await post('/process?op=thumbnail', form([{ data: landscape, name: 'photo.jpg' }]));
    expect(r.status, r.data.toString()).toBe(200);
    expect(r.res.headers.get('content-type')).toBe('image/webp');
    expect(r.res.headers.get('content-length')).toBe(String(r.data.length));
    expect(r.res.headers.get('content-disposition')).toContain(`filename="photo.webp"`);
    expect(r.res.headers.get('x-image-width')).toBe('256');
    expect(await sharp(r.data).metadata()).toMatchObject({
      format: 'webp',
      width: 256,
      height: 192,
    });
  });

  it('resizes a raw body, keeping its format, with fit', async () => {
    const fill = await post('/process?op=resize&width=300&height=300&fit=fill', landscape);
    expect(fill.status).toBe(200);
    expect(fill.res.headers.get('content-type')).toBe('image/jpeg');
    expect(fill.res.headers.get('content-disposition')).toContain(`filename="processed.jpg"`);
    expect(await sharp(fill.data).metadata()).toMatchObject({
      format: 'jpeg',
      width: 300,
      height: 300,
    });
    const inside = await post('/process?op=resize&width=300&height=300&fit=inside', landscape);
    expect(await sharp(inside.data).metadata()).toMatchObject({ width: 300, height: 225 });
    const one = await post('/process?op=resize&height=600', landscape);
    expect(await sharp(one.data).metadata()).toMatchObject({ width: 800, height: 600 });
  });

  it('makes a grayscale image, with options from form fields before the file', async () => {
    const r = await post(
      '/process',
      form([{ data: fixture('photo.jpg'), name: 'photo.jpg' }], { op: 'grayscale', format: 'png' }),
    );
    expect(r.status, r.data.toString()).toBe(200);
    expect(r.res.headers.get('content-type')).toBe('image/png');
    const meta = await sharp(r.data).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 640, height: 480, space: 'b-w' });
    expect(meta.channels).toBe(1);
  });

  it('writes every output format, at the quality asked', async () => {
    const sizes: Record<string, number> = {};
    for (const format of ['jpeg', 'webp', 'png', 'avif'] as const) {
      const r = await post(`/process?op=resize&width=320&format=${format}`, landscape);
      expect(r.status, `${format}: ${r.data.toString().slice(0, 200)}`).toBe(200);
      expect(r.res.headers.get('content-type')).toBe(`image/${format}`);
      const meta = await sharp(r.data).metadata();
      expect(meta.format).toBe(format === 'avif' ? 'heif' : format);
      expect(meta).toMatchObject({ width: 320, height: 240 });
    }
    for (const quality of [10, 95]) {
      const noisy = await sharp(fixture('photo.jpg')).resize(300).jpeg({ quality: 100 }).toBuffer();
      const r = await post(`/process?op=grayscale&format=jpeg&quality=${quality}`, noisy);
      sizes[quality] = r.data.length;
    }
    expect(sizes[10]).toBeLessThan(sizes[95]!);
  });

  it('turns the image upright from its EXIF orientation', async () => {
    const r = await post('/process?op=thumbnail&format=png', rotated);
    expect(await sharp(r.data).metadata()).toMatchObject({ width: 128, height: 256 });
  });

  it('refuses bad options with a 400 naming the option', async () => {
    const jpeg = form([{ data: landscape }]);
    await expectError(await post('/process', landscape), 400, 'INVALID_OPTION', /^op is required/);
    await expectError(await post('/process?op=blur', landscape), 400, 'INVALID_OPTION', /^op must/);
    await expectError(await post('/process?op=resize', landscape), 400, 'INVALID_OPTION', /width/);
    for (const [query, name] of [
      ['op=resize&width=0', 'width'],
      ['op=resize&height=99999', 'height'],
      ['op=resize&width=10&fit=squash', 'fit'],
      ['op=thumbnail&format=bmp', 'format'],
      ['op=thumbnail&quality=101', 'quality'],
    ]) {
      await expectError(
        await post(`/process?${query}`, jpeg),
        400,
        'INVALID_OPTION',
        new RegExp(`^${name} must be`),
      );
    }
    await expectError(
      await post('/process?op=resize&widht=10', landscape),
      400,
      'UNKNOWN_OPTION',
      /"widht"/,
    );
    await expectError(
      await post('/process', form([{ data: landscape }], { op: 'resize', width: 'ten' })),
      400,
      'INVALID_OPTION',
      /^width must be/,
    );
  });

  it('refuses what is not an image it can process with a 415, by content', async () => {
    await expectError(
      await post('/process?op=thumbnail', form([{ data: Buffer.from('hello'), name: 'a.jpg' }])),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      /"a\.jpg" is an unrecognised type/,
    );
    const pixels = await sharp(fixture('alpha.png')).raw().toBuffer(); // no header at all
    await expectError(await post('/process?op=thumbnail', pixels), 415, 'UNSUPPORTED_MEDIA_TYPE');
    const pdf = Buffer.from('%PDF-1.4\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n');
    await expectError(
      await post('/process?op=thumbnail', pdf),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      /application\/pdf/,
    );
  });

  it('answers a corrupt image with a 422 naming the problem, and keeps serving', async () => {
    showLogsOnFailure();
    const truncated = landscape.subarray(0, 2000);
    await expectError(
      await post('/process?op=thumbnail', form([{ data: truncated, name: 'cut.jpg' }])),
      422,
      'INVALID_IMAGE',
      /"cut\.jpg" could not be processed: .*premature end/i,
    );
    const noise = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(5000, 7)]);
    await expectError(await post('/process?op=grayscale', noise), 422, 'INVALID_IMAGE');
    await expectError(await post('/process?op=thumbnail', Buffer.alloc(0)), 400, 'EMPTY_FILE');
    const ok = await post('/process?op=thumbnail', landscape);
    expect(ok.status).toBe(200);
    expect(cluster.errorLines('gateway')).toEqual([]);
  });

  it('refuses an image over MAX_UPLOAD_BYTES or MAX_INPUT_PIXELS with a 413', async () => {
    const { stream } = jpegStream(1.5 * MB);
    const big = Buffer.concat(await stream.toArray());
    await expectError(
      await post('/process?op=thumbnail', form([{ data: big, name: 'big.jpg' }])),
      413,
      'PAYLOAD_TOO_LARGE',
      /"big\.jpg" is larger than MAX_UPLOAD_BYTES/,
    );
    await expectError(await post('/process?op=thumbnail', big), 413, 'PAYLOAD_TOO_LARGE');
    const wide = await sharp({
      create: { width: 2100, height: 2000, channels: 3, background: '#000' },
    })
      .png()
      .toBuffer();
    await expectError(
      await post('/process?op=thumbnail', wide),
      413,
      'PAYLOAD_TOO_LARGE',
      /has more pixels than MAX_INPUT_PIXELS \(4000000\)/,
    );
    // A small input asked to become a huge result: refused before decoding, naming the option.
    const narrow = await sharp({
      create: { width: 10, height: 1000, channels: 3, background: '#000' },
    })
      .png()
      .toBuffer();
    await expectError(
      await post('/process?op=resize&width=8000', narrow),
      400,
      'INVALID_OPTION',
      /^width: the result would be 8000×800000 pixels/,
    );
  });

  it('refuses a second file, and a form without one', async () => {
    await expectError(
      await post('/process?op=thumbnail', form([{ data: landscape }, { data: landscape }])),
      400,
      'TOO_MANY_FILES',
      /\/batch/,
    );
    const onlyFields = new FormData();
    onlyFields.append('op', 'thumbnail');
    await expectError(await post('/process', onlyFields), 400, 'NO_FILE');
  });

  it('answers 503 with Retry-After when every slot is busy, instead of queueing', async () => {
    showLogsOnFailure();
    const slow = slowProcess(landscape);
    // The slow request holds the only slot once the gateway has its headers.
    const busy = await waitFor('a 503 while the slot is held', async () => {
      const r = await post('/process?op=thumbnail', landscape);
      return r.status === 503 ? r : undefined;
    });
    expect(busy.res.headers.get('retry-after')).toBe('2');
    await expectError(busy, 503, 'PROCESSING_BUSY', /PROCESS_CONCURRENCY/);
    await expectError(
      await post('/batch?op=thumbnail', form([{ data: landscape }])),
      503,
      'PROCESSING_BUSY',
    );
    slow.open();
    const done = await slow.reply;
    expect(done.statusCode).toBe(200);
    expect((await sharp(Buffer.from(await done.body.arrayBuffer())).metadata()).width).toBe(256);
    expect((await post('/process?op=thumbnail', landscape)).status).toBe(200);
  });

  it('gives the slot back when the client goes away mid-upload', async () => {
    await new Promise<void>((resolve) => {
      const url = new URL('/process?op=thumbnail', cluster.gatewayUrl);
      const req = httpRequest(url, {
        method: 'POST',
        headers: { 'content-length': String(landscape.length) },
      });
      req.on('error', () => resolve());
      req.write(landscape.subarray(0, 1000));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 300);
    });
    const after = await waitFor(
      'the slot back',
      async () => {
        const r = await post('/process?op=thumbnail', landscape);
        return r.status === 200 ? r : undefined;
      },
      5000,
    );
    expect(after.status).toBe(200);
  });

  it('stores nothing', () => {
    expect(queryDb(cluster, 'SELECT id FROM files')).toEqual([]);
  });
});

describe('POST /batch', () => {
  it('answers a ZIP of 3 processed images, streamed', async () => {
    showLogsOnFailure();
    const r = await post(
      '/batch?op=thumbnail&width=100',
      form([
        { data: noisy, name: 'land.jpg' },
        { data: fixture('alpha.png'), name: 'alpha.png' },
        { data: landscape, name: 'land.jpg' },
      ]),
    );
    expect(r.status, r.data.toString().slice(0, 300)).toBe(200);
    expect(r.res.headers.get('content-type')).toBe('application/zip');
    expect(r.res.headers.get('content-disposition')).toContain('attachment; filename="images.zip"');
    expect(r.res.headers.get('content-length')).toBeNull(); // chunked: sent as it is made
    const entries = unzip(r.data);
    // In request order, though the small second part is received before the large first one is on disk.
    expect([...entries.keys()]).toEqual(['land.webp', 'alpha.webp', 'land-2.webp']);
    for (const [name, data] of entries) {
      const meta = await sharp(data).metadata();
      expect(meta.format, name).toBe('webp');
      // alpha.png is 96 px wide: a thumbnail never enlarges.
      expect(Math.max(meta.width, meta.height), name).toBe(name === 'alpha.webp' ? 96 : 100);
    }
  });

  it('takes options from form fields before the files', async () => {
    const r = await post(
      '/batch',
      form(
        [
          { data: landscape, name: 'a.jpg' },
          { data: fixture('photo.jpg'), name: 'b.jpg' },
        ],
        {
          op: 'grayscale',
          format: 'png',
        },
      ),
    );
    expect(r.status).toBe(200);
    const entries = unzip(r.data);
    expect([...entries.keys()]).toEqual(['a.png', 'b.png']);
    expect(await sharp(entries.get('b.png')!).metadata()).toMatchObject({
      width: 640,
      height: 480,
      space: 'b-w',
    });
  });

  it('leaves out an image it cannot decode and lists it in errors.txt', async () => {
    const r = await post(
      '/batch?op=grayscale',
      form([
        { data: landscape.subarray(0, 2000), name: 'cut.jpg' },
        { data: landscape, name: 'good.jpg' },
      ]),
    );
    expect(r.status).toBe(200);
    const entries = unzip(r.data);
    expect([...entries.keys()]).toEqual(['good.jpg', 'errors.txt']);
    expect(entries.get('errors.txt')!.toString()).toMatch(
      /cut\.jpg \(file 1\): INVALID_IMAGE \(422\)/,
    );
    // Every image failing is the failure's own status.
    await expectError(
      await post(
        '/batch?op=grayscale',
        form([{ data: landscape.subarray(0, 2000), name: 'cut.jpg' }]),
      ),
      422,
      'INVALID_IMAGE',
      /"cut\.jpg \(file 1\)"/,
    );
  });

  it('refuses a non-image part with a 415 that says which', async () => {
    await expectError(
      await post(
        '/batch?op=thumbnail',
        form([
          { data: landscape, name: 'a.jpg' },
          { data: Buffer.from('just text'), name: 'notes.jpg' },
        ]),
      ),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      /"notes\.jpg \(file 2\)" is an unrecognised type/,
    );
  });

  it('refuses more than MAX_BATCH_FILES images, and more than MAX_BATCH_BYTES, with a 413', async () => {
    const small = fixture('photo.jpg');
    await expectError(
      await post(
        '/batch?op=thumbnail',
        form([small, small, small, small].map((data) => ({ data }))),
      ),
      413,
      'PAYLOAD_TOO_LARGE',
      /at most 3 images per batch \(MAX_BATCH_FILES\)/,
    );
    // Three parts under the per-image limit, over the batch's: refused by Content-Length…
    const part = Buffer.concat(await jpegStream(0.8 * MB).stream.toArray());
    const parts = [part, part, part].map((data) => ({ data }));
    await expectError(
      await post('/batch?op=thumbnail', form(parts)),
      413,
      'PAYLOAD_TOO_LARGE',
      /MAX_BATCH_BYTES/,
    );
    // …and while streaming, when there is none.
    const encoded = new Response(form(parts));
    const res = await request(`${cluster.gatewayUrl}/batch?op=thumbnail`, {
      method: 'POST',
      headers: { 'content-type': encoded.headers.get('content-type')! },
      body: Readable.from(Buffer.from(await encoded.arrayBuffer())),
    });
    const body = (await res.body.json()) as any;
    expect(res.statusCode).toBe(413);
    expect(body.error.message).toMatch(/the batch is larger than MAX_BATCH_BYTES/);
  });

  it('refuses a form without an image, and a body that is not a form', async () => {
    const onlyFields = new FormData();
    onlyFields.append('op', 'thumbnail');
    await expectError(await post('/batch', onlyFields), 400, 'NO_FILE');
    await expectError(await post('/batch?op=thumbnail', landscape), 400, 'NOT_MULTIPART');
    await expectError(
      await post('/batch', form([{ data: landscape }])),
      400,
      'INVALID_OPTION',
      /^op/,
    );
  });

  it('gives the slot back and cleans up when the client leaves mid-ZIP', async () => {
    const big = await sharp({
      create: { width: 1800, height: 1200, channels: 3, background: '#123456' },
    })
      .jpeg()
      .toBuffer();
    const parts = [big, big, big].map((data) => ({ data }));
    const stop = new AbortController();
    const res = await fetch(`${cluster.gatewayUrl}/batch?op=resize&width=1800&format=png`, {
      method: 'POST',
      body: form(parts),
      signal: stop.signal,
    });
    expect(res.status).toBe(200);
    await res.body!.getReader().read();
    stop.abort();
    const after = await waitFor(
      'the slot back',
      async () => {
        const r = await post('/process?op=thumbnail', landscape);
        return r.status === 200 ? r : undefined;
      },
      // The image in hand is finished first (sharp cannot be interrupted); slow on a busy machine.
      60_000,
    );
    expect(after.status).toBe(200);
  });

  it('leaves no temp files behind and logged no error', async () => {
    const spool = join(cluster.dir, 'spool', 'gateway');
    await waitFor('spool emptied', async () => (await readdir(spool)).length === 0);
    expect(cluster.errorLines('gateway')).toEqual([]);
  });
});

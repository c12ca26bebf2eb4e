/**
 * Direct processing against a real gateway: POST /process answers the
 * processed image, POST /batch a streamed ZIP, nothing stored. Small limits
 * (one processing slot, 3 images and 2 MB per batch, 1 MB per image, 2 MB of
 * spool, 3 s plus 1 s per 10 KB for a body) so every refusal can be reached
 * with small inputs and slow clients are cut off quickly.
 */
import { readdir, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
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
      PROCESS_SPOOL_BYTES: '2MB',
      BODY_TIMEOUT_SECONDS: '3',
      BODY_MIN_RATE: '10KB',
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

/** The main gateway's spool directory, and what is in it. */
const spoolDir = () => join(cluster.dir, 'spool', 'gateway');
const spooled = () => readdir(spoolDir());

async function spoolEmptied() {
  await waitFor('an empty spool', async () => {
    const left = await spooled();
    if (left.length > 0) throw new Error(`still there: ${left.join(', ')}`);
    return true;
  });
}

const BOUNDARY = 'trove-test-boundary';
const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

/** The head of a multipart `file` part, as sent before its bytes. */
const partHead = (name = 'image.jpg') =>
  Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
      'Content-Type: image/jpeg\r\n\r\n',
  );

interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Time from the client's first byte to the end of the answer. */
  afterMs: number;
}

/** A complete HTTP answer in `data`, or undefined while it is still coming. */
function parseReply(data: Buffer): Omit<RawReply, 'afterMs'> | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const headers = Object.fromEntries(
    lines.map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
    }),
  );
  const body = data.subarray(end + 4);
  const length = Number(headers['content-length']);
  if (!(body.length >= length)) return undefined;
  return { status: Number(statusLine!.split(' ')[1]), headers, body: body.subarray(0, length) };
}

/**
 * A client spoken over a bare socket, so that nothing buffers, retries or
 * closes for it: it sends the request head at once, then whatever `send` is
 * given, and leaves when the test ends.
 */
function rawClient(path: string, contentType: string, length: number) {
  const { hostname, port } = new URL(cluster.gatewayUrl);
  const socket = connect(Number(port), hostname);
  socket.on('error', () => undefined); // a write after the gateway hung up
  onTestFinished(() => {
    socket.destroy();
  });
  const started = performance.now();
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: ${contentType}\r\n` +
      `Content-Length: ${length}\r\n\r\n`,
  );
  const received: Buffer[] = [];
  const reply = new Promise<RawReply>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      const parsed = parseReply(Buffer.concat(received));
      if (parsed) resolve({ ...parsed, afterMs: performance.now() - started });
    });
  });
  return {
    send: (data: Buffer) => socket.write(data),
    reply,
    /** Resolves when the connection is closed (by the gateway, unless `leave` was called). */
    closed: new Promise<void>((resolve) => socket.once('close', () => resolve())),
    leave: () => socket.destroy(),
  };
}

/**
 * A slow-loris client: `first` at once, then one byte of its body every
 * 250 ms (never idle for long, yet far below any rate) until it is answered.
 */
function trickler(path: string, contentType: string, first: Buffer) {
  const client = rawClient(path, contentType, first.length + 100_000);
  client.send(first);
  const drip = setInterval(() => client.send(Buffer.alloc(1)), 250);
  const stop = () => clearInterval(drip);
  void client.reply.then(stop);
  void client.closed.then(stop);
  return client;
}

/** `promise`, or a failure naming `what` once `ms` have passed. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** One slow client of each kind: a raw /process, a multipart /process, a /batch. */
const slowKinds = () => [
  {
    what: 'raw /process',
    path: '/process?op=thumbnail',
    type: 'image/jpeg',
    first: landscape.subarray(0, 300),
  },
  {
    what: 'multipart /process',
    path: '/process?op=thumbnail',
    type: MULTIPART,
    first: Buffer.concat([partHead(), landscape.subarray(0, 300)]),
  },
  {
    what: '/batch',
    path: '/batch?op=thumbnail',
    type: MULTIPART,
    first: Buffer.concat([partHead(), landscape.subarray(0, 300)]),
  },
];

/** A /batch body of `parts`, encoded whole, with its content type. */
async function encodedForm(parts: Part[]) {
  const encoded = new Response(form(parts));
  const body = Buffer.from(await encoded.arrayBuffer());
  return { body, contentType: encoded.headers.get('content-type')! };
}

/**
 * A /batch of three 2000 px PNGs of noise (about 24 MB of ZIP, more than
 * the sockets between client and gateway hold) whose client does not read
 * its answer: once its 200 has come, the batch holds the processing slot
 * until its client reads the ZIP or leaves.
 */
async function slotHolder() {
  const { body, contentType } = await encodedForm([noisy, noisy, noisy].map((data) => ({ data })));
  const leave = new AbortController();
  onTestFinished(() => leave.abort());
  const res = await fetch(`${cluster.gatewayUrl}/batch?op=resize&width=2000&format=png`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
    signal: leave.signal,
  });
  expect(res.status).toBe(200);
  return { res, leave: () => leave.abort() };
}

/** The slot is taken: a /process whose input is in gets 503 PROCESSING_BUSY with Retry-After. */
async function expectSlotBusy() {
  const busy = await post('/process?op=thumbnail', landscape);
  await expectError(busy, 503, 'PROCESSING_BUSY', /PROCESS_CONCURRENCY/);
  expect(busy.res.headers.get('retry-after')).toBe('2');
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

  it('stores nothing', () => {
    expect(queryDb(cluster, 'SELECT id FROM files')).toEqual([]);
  });
});

describe('processing slots and slow bodies', () => {
  it('serves others while a client trickles its body: no slot is taken before the body is in', async () => {
    showLogsOnFailure();
    for (const kind of slowKinds()) {
      await spoolEmptied();
      const slow = trickler(kind.path, kind.type, kind.first);
      // Its temp file is open: the gateway is reading its body.
      await waitFor(`the temp file of the ${kind.what}`, async () => (await spooled()).length > 0);
      const raw = await post('/process?op=thumbnail', landscape);
      expect(raw.status, `while a ${kind.what} trickles: ${raw.data}`).toBe(200);
      const multipart = await post('/process?op=thumbnail', form([{ data: landscape }]));
      expect(multipart.status, `while a ${kind.what} trickles: ${multipart.data}`).toBe(200);
      const batch = await post('/batch?op=thumbnail', form([{ data: landscape }]));
      expect(batch.status, `while a ${kind.what} trickles: ${batch.data}`).toBe(200);
      // A client that leaves mid-body leaves nothing behind.
      slow.leave();
      await spoolEmptied();
    }
  });

  it('cuts off a body below BODY_MIN_RATE after BODY_TIMEOUT_SECONDS with 408 BODY_TOO_SLOW, and removes its temp file', async () => {
    showLogsOnFailure();
    for (const { what, path, type, first } of slowKinds()) {
      await spoolEmptied();
      const client = trickler(path, type, first);
      await waitFor(`the temp file of the ${what}`, async () => (await spooled()).length > 0);
      // Ten times the 3 s it is allowed: generous for a loaded machine.
      const reply = await within(30_000, `answer to the ${what}`, client.reply);
      expect(reply.status, `${what}: ${reply.body}`).toBe(408);
      expect(reply.headers['content-type']).toMatch(/^application\/json/);
      const { error } = JSON.parse(reply.body.toString());
      expect(error.code).toBe('BODY_TOO_SLOW');
      expect(error.message).toMatch(
        /too slowly \(\d+ bytes in [\d.]+ s\).*BODY_TIMEOUT_SECONDS \(3 s\) plus 1 s per BODY_MIN_RATE \(10000 bytes\)/,
      );
      // Never before its grace: the client's clock starts before the gateway's.
      expect(reply.afterMs, what).toBeGreaterThanOrEqual(3000);
      // The gateway hangs up rather than wait for the rest, and removes what it had.
      await client.closed;
      await spoolEmptied();
    }
    expect((await fetch(`${cluster.gatewayUrl}/health`)).status).toBe(200);
    expect((await post('/process?op=thumbnail', landscape)).status).toBe(200);
    expect(cluster.errorLines('gateway')).toEqual([]);
  });

  it('lets a slow but steady body through, long past BODY_TIMEOUT_SECONDS', async () => {
    showLogsOnFailure();
    // 4 KB every 100 ms: about 40 KB/s, four times BODY_MIN_RATE, for some 11 s.
    const client = rawClient('/process?op=thumbnail', 'image/jpeg', noisy.length);
    for (let at = 0; at < noisy.length; at += 4000) {
      client.send(noisy.subarray(at, at + 4000));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const reply = await client.reply;
    expect(reply.status, reply.body.toString()).toBe(200);
    expect(reply.afterMs).toBeGreaterThan(2 * 3000);
    expect((await sharp(reply.body).metadata()).width).toBe(256);
  });

  it('answers 503 PROCESSING_BUSY with Retry-After when the input is in but the slot is busy, and removes the input', async () => {
    showLogsOnFailure();
    await spoolEmptied();
    const holder = (await slotHolder()).res;
    const [holding] = await spooled(); // the holder's parts, until its ZIP is sent
    // A raw /process: its body is read into a temp file while the slot is busy…
    const raw = rawClient('/process?op=thumbnail', 'image/jpeg', noisy.length);
    raw.send(noisy.subarray(0, -1000));
    await waitFor('its input on disk', async () =>
      (await spooled()).some((name) => name.startsWith('process-')),
    );
    raw.send(noisy.subarray(-1000));
    // …and once it is all in, finds no slot: 503 at once, its input removed before the answer.
    const refused = await raw.reply;
    expect(refused.status, refused.body.toString()).toBe(503);
    expect(refused.headers['retry-after']).toBe('2');
    expect(JSON.parse(refused.body.toString()).error).toMatchObject({
      code: 'PROCESSING_BUSY',
      message: expect.stringMatching(/PROCESS_CONCURRENCY/),
    });
    expect(await spooled()).toEqual([holding]);
    await expectSlotBusy();
    await expectError(
      await post('/process?op=thumbnail', form([{ data: landscape, name: 'b.jpg' }])),
      503,
      'PROCESSING_BUSY',
    );
    await expectError(
      await post('/batch?op=thumbnail', form([{ data: landscape }, { data: noisy }])),
      503,
      'PROCESSING_BUSY',
    );
    // Nothing of the refused inputs is left, only the holder's parts.
    expect(await spooled()).toEqual([holding]);
    const zip = unzip(Buffer.from(await holder.arrayBuffer()));
    expect([...zip.keys()]).toEqual(['image.png', 'image-2.png', 'image-3.png']);
    expect((await post('/process?op=thumbnail', landscape)).status).toBe(200);
    await spoolEmptied();
  });

  it('refuses with 503 SPOOL_FULL a body the spool has no room for while others are received', async () => {
    showLogsOnFailure();
    await spoolEmptied();
    // A batch that has sent 1.7 MB of its parts and then trickles: it holds that much of the 2 MB.
    const part = (data: Buffer, name: string) =>
      Buffer.concat([partHead(name), data, Buffer.from('\r\n')]);
    const big = Buffer.concat(await jpegStream(0.9 * MB).stream.toArray());
    const slow = trickler(
      '/batch?op=thumbnail',
      MULTIPART,
      Buffer.concat([part(big, 'a.jpg'), partHead('b.jpg'), big.subarray(0, 0.8 * MB)]),
    );
    const spoolBytes = async () => {
      let total = 0;
      for (const entry of await spooled())
        for (const file of await readdir(join(spoolDir(), entry)))
          total += (await stat(join(spoolDir(), entry, file))).size;
      return total;
    };
    await waitFor('1.6 MB of its parts on disk', async () => (await spoolBytes()) >= 1.6 * MB);
    const refused = await post('/process?op=thumbnail', noisy);
    await expectError(refused, 503, 'SPOOL_FULL', /PROCESS_SPOOL_BYTES/);
    expect(refused.res.headers.get('retry-after')).toBe('2');
    expect((await spooled()).filter((name) => name.startsWith('process-'))).toEqual([]);
    slow.leave();
    await spoolEmptied();
    expect((await post('/process?op=thumbnail', noisy)).status).toBe(200);
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
    showLogsOnFailure();
    const { res, leave } = await slotHolder();
    await res.body!.getReader().read();
    // The slot is really held while the client is there…
    await expectSlotBusy();
    leave();
    // …and comes back once it has left.
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
    await spoolEmptied();
  });

  it('leaves no temp files behind and logged no error', async () => {
    const spool = join(cluster.dir, 'spool', 'gateway');
    await waitFor('spool emptied', async () => (await readdir(spool)).length === 0);
    expect(cluster.errorLines('gateway')).toEqual([]);
  });
});

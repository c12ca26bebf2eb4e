import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { BadRequestError, UnsupportedMediaTypeError } from '../../shared/errors.js';
import { TypeSniffer, UNKNOWN_TYPE, isAllowedType } from './content-type.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

const fixture = (name: string) => readFile(new URL(`../../test/fixtures/${name}`, import.meta.url));

/** The smallest GIF: 1x1, 43 bytes, far below the sniffing window. */
const tinyGif = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

function split(buf: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) chunks.push(buf.subarray(i, i + size));
  return chunks;
}

/** Runs `data` through a TypeSniffer and reports the type, the bytes that got through and any failure. */
async function sniff(
  data: Buffer,
  chunkSize: number,
  allowed: readonly string[] = ['image/*'],
): Promise<{ type: string | undefined; out: Buffer; error: unknown }> {
  const sniffer = new TypeSniffer(allowed, 'upload.bin');
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      received.push(chunk);
      done();
    },
  });
  const error = await pipeline(Readable.from(split(data, chunkSize)), sniffer, sink).then(
    () => undefined,
    (err: unknown) => err,
  );
  const type = await sniffer.type.catch(() => undefined);
  return { type, out: Buffer.concat(received), error };
}

describe('isAllowedType', () => {
  it('matches exact types, family wildcards and */*', () => {
    expect(isAllowedType('image/png', ['image/*'])).toBe(true);
    expect(isAllowedType('image/png', ['image/png'])).toBe(true);
    expect(isAllowedType('image/png', ['application/pdf', 'image/png'])).toBe(true);
    expect(isAllowedType('application/pdf', ['*/*'])).toBe(true);
    expect(isAllowedType(UNKNOWN_TYPE, ['*/*'])).toBe(true);
  });

  it('refuses everything else', () => {
    expect(isAllowedType('application/pdf', ['image/*'])).toBe(false);
    expect(isAllowedType('image/png', ['image/jpeg'])).toBe(false);
    expect(isAllowedType('imagex/png', ['image/*'])).toBe(false);
    expect(isAllowedType('image/png', [])).toBe(false);
    expect(isAllowedType(UNKNOWN_TYPE, ['image/*'])).toBe(false);
  });
});

describe('TypeSniffer', () => {
  let jpeg: Buffer;
  let png: Buffer;
  let text: Buffer;

  beforeAll(async () => {
    jpeg = await fixture('photo.jpg');
    png = await fixture('alpha.png');
    const pkg = await readFile(new URL('../../package.json', import.meta.url));
    // Longer than the sniffing window, so the decision happens mid-stream.
    text = Buffer.concat([pkg, pkg, pkg, pkg]);
  });

  for (const chunkSize of [1, 1000, 1 << 20]) {
    it(`detects a JPEG and passes it through unchanged (${chunkSize}-byte chunks)`, async () => {
      expect(jpeg.length).toBeGreaterThan(4100);
      const { type, out, error } = await sniff(jpeg, chunkSize);
      expect(error).toBeUndefined();
      expect(type).toBe('image/jpeg');
      expect(sha256(out)).toBe(sha256(jpeg));
    });

    it(`detects a PNG and passes it through unchanged (${chunkSize}-byte chunks)`, async () => {
      const { type, out, error } = await sniff(png, chunkSize);
      expect(error).toBeUndefined();
      expect(type).toBe('image/png');
      expect(sha256(out)).toBe(sha256(png));
    });
  }

  for (const chunkSize of [1, 512, 1 << 20]) {
    it(`refuses text with 415 before a byte goes downstream (${chunkSize}-byte chunks)`, async () => {
      expect(text.length).toBeGreaterThan(4100);
      const { type, out, error } = await sniff(text, chunkSize);
      expect(error).toBeInstanceOf(UnsupportedMediaTypeError);
      expect((error as UnsupportedMediaTypeError).status).toBe(415);
      expect((error as Error).message).toContain('upload.bin');
      expect(type).toBeUndefined();
      expect(out.length).toBe(0);
    });
  }

  it('refuses a short text file at the end of the stream', async () => {
    const { error, out } = await sniff(Buffer.from('hello, world\n'), 4);
    expect(error).toBeInstanceOf(UnsupportedMediaTypeError);
    expect(out.length).toBe(0);
  });

  it('refuses an image type outside the allowed list', async () => {
    const { error, out } = await sniff(png, 1000, ['image/jpeg']);
    expect(error).toBeInstanceOf(UnsupportedMediaTypeError);
    expect((error as Error).message).toContain('image/png');
    expect(out.length).toBe(0);
  });

  it('lets unknown bytes through as application/octet-stream under */*', async () => {
    const { type, out, error } = await sniff(text, 100, ['*/*']);
    expect(error).toBeUndefined();
    expect(type).toBe(UNKNOWN_TYPE);
    expect(out.equals(text)).toBe(true);
  });

  it('detects a file shorter than the sniffing window at the end of the stream', async () => {
    for (const chunkSize of [1, 10, 100]) {
      const { type, out, error } = await sniff(tinyGif, chunkSize);
      expect(error).toBeUndefined();
      expect(type).toBe('image/gif');
      expect(out.equals(tinyGif)).toBe(true);
    }
  });

  it('refuses an empty file with 400, even under */*', async () => {
    const { type, out, error } = await sniff(Buffer.alloc(0), 1, ['*/*']);
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error).toMatchObject({ status: 400, code: 'EMPTY_FILE' });
    expect(type).toBeUndefined();
    expect(out.length).toBe(0);
  });

  it('rejects its type promise when the upload fails before the type is known', async () => {
    const sniffer = new TypeSniffer(['image/*'], 'cut.jpg');
    const body = Readable.from(
      (async function* () {
        yield jpeg.subarray(0, 100);
        throw new Error('client went away');
      })(),
    );
    await expect(
      pipeline(body, sniffer, new Writable({ write: (_c, _e, done) => done() })),
    ).rejects.toThrow('client went away');
    await expect(sniffer.type).rejects.toThrow('client went away');
  });
});

import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { BadRequestError, PayloadTooLargeError } from './errors.js';
import {
  imageOptionsFromQuery,
  InvalidImageError,
  openImage,
  outputFormat,
  outputName,
  outputSize,
  processImage,
  resolveImageOptions,
  setImageOption,
  type GivenImageOptions,
} from './image-ops.js';

const parse = (query: Record<string, string>) => resolveImageOptions(imageOptionsFromQuery(query));

function rejection(fn: () => unknown): BadRequestError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BadRequestError);
    return err as BadRequestError;
  }
  throw new Error('expected a 400');
}

describe('image options', () => {
  it('applies the thumbnail defaults: 256 px longest edge, WebP, never enlarged', () => {
    expect(parse({ op: 'thumbnail' })).toEqual({
      op: 'thumbnail',
      width: 256,
      height: 256,
      fit: 'inside',
      format: 'webp',
      quality: undefined,
      enlarge: false,
    });
    expect(parse({ op: 'thumbnail', width: '100' })).toMatchObject({ width: 100, height: 100 });
  });

  it('reads every option, case-insensitively for words, jpg as jpeg', () => {
    expect(
      parse({
        op: 'Resize',
        width: '640',
        height: ' 480 ',
        fit: 'inside',
        format: 'JPG',
        quality: '75',
      }),
    ).toEqual({
      op: 'resize',
      width: 640,
      height: 480,
      fit: 'inside',
      format: 'jpeg',
      quality: 75,
      enlarge: true,
    });
    expect(parse({ op: 'grayscale' })).toMatchObject({ width: undefined, format: undefined });
  });

  const bad: [Record<string, string>, string, string][] = [
    [{}, 'op is required', 'INVALID_OPTION'],
    [{ op: 'blur' }, 'op must be one of grayscale, resize, thumbnail', 'INVALID_OPTION'],
    [{ op: 'resize' }, 'op=resize needs width', 'INVALID_OPTION'],
    [{ op: 'resize', width: '0' }, 'width must be an integer from 1 to 8192', 'INVALID_OPTION'],
    [{ op: 'resize', width: '8193' }, 'width must be', 'INVALID_OPTION'],
    [{ op: 'resize', width: '12.5' }, 'width must be', 'INVALID_OPTION'],
    [{ op: 'resize', height: '-3' }, 'height must be', 'INVALID_OPTION'],
    [{ op: 'resize', width: '10', fit: 'stretch' }, 'fit must be one of cover', 'INVALID_OPTION'],
    [{ op: 'grayscale', fit: 'cover' }, 'fit applies only with width or height', 'INVALID_OPTION'],
    [
      { op: 'thumbnail', format: 'gif' },
      'format must be one of jpeg, webp, png, avif',
      'INVALID_OPTION',
    ],
    [
      { op: 'thumbnail', quality: '0' },
      'quality must be an integer from 1 to 100',
      'INVALID_OPTION',
    ],
    [{ op: 'thumbnail', quality: '101' }, 'quality must be', 'INVALID_OPTION'],
    [{ op: 'thumbnail', quality: 'high' }, 'quality must be', 'INVALID_OPTION'],
    [{ op: 'resize', widht: '10' }, 'unknown option "widht"', 'UNKNOWN_OPTION'],
  ];
  it.each(bad)('refuses %j with a 400 naming the option', (query, message, code) => {
    const err = rejection(() => parse(query));
    expect(err.status).toBe(400);
    expect(err.code).toBe(code);
    expect(err.message).toContain(message);
  });

  it('quotes a bad value, cut short', () => {
    const err = rejection(() => setImageOption({}, 'width', 'x'.repeat(100)));
    expect(err.message).toBe(`width must be an integer from 1 to 8192, got "${'x'.repeat(40)}"`);
  });

  it('lets a later value (a form field) override an earlier one (the query)', () => {
    const given: GivenImageOptions = imageOptionsFromQuery({ op: 'resize', width: '10' });
    setImageOption(given, 'width', '20');
    expect(resolveImageOptions(given).width).toBe(20);
  });
});

describe('outputFormat and outputName', () => {
  it('keeps a writable input format, else writes PNG', () => {
    const o = parse({ op: 'grayscale' });
    expect(outputFormat(o, 'image/jpeg')).toBe('jpeg');
    expect(outputFormat(o, 'image/avif')).toBe('avif');
    expect(outputFormat(o, 'image/gif')).toBe('png');
    expect(outputFormat(parse({ op: 'grayscale', format: 'webp' }), 'image/jpeg')).toBe('webp');
  });

  it('swaps the extension, or names a nameless input "processed"', () => {
    expect(outputName('photo.jpg', 'webp')).toBe('photo.webp');
    expect(outputName('a.b.png', 'jpeg')).toBe('a.b.jpg');
    expect(outputName(undefined, 'avif')).toBe('processed.avif');
    expect(outputName('.jpg', 'png')).toBe('processed.png');
  });
});

describe('outputSize', () => {
  const input = { width: 4000, height: 3000 };
  it('follows the aspect ratio when one edge is given', () => {
    expect(outputSize(parse({ op: 'resize', width: '400' }), input)).toEqual({
      width: 400,
      height: 300,
    });
    expect(outputSize(parse({ op: 'resize', height: '600' }), input)).toEqual({
      width: 800,
      height: 600,
    });
  });
  it('answers the box for cover, the fitted size for inside and outside', () => {
    const box = { width: '300', height: '300' };
    expect(outputSize(parse({ op: 'resize', ...box }), input)).toEqual({ width: 300, height: 300 });
    expect(outputSize(parse({ op: 'resize', ...box, fit: 'inside' }), input)).toEqual({
      width: 300,
      height: 225,
    });
    expect(outputSize(parse({ op: 'resize', ...box, fit: 'outside' }), input)).toEqual({
      width: 400,
      height: 300,
    });
  });
  it('never enlarges a thumbnail', () => {
    expect(outputSize(parse({ op: 'thumbnail' }), { width: 100, height: 50 })).toEqual({
      width: 100,
      height: 50,
    });
    expect(outputSize(parse({ op: 'thumbnail' }), input)).toEqual({ width: 256, height: 192 });
  });
  it('catches a narrow image blown up to billions of pixels', () => {
    const out = outputSize(parse({ op: 'resize', width: '8192' }), { width: 10, height: 10_000 });
    expect(out.width * out.height).toBeGreaterThan(50_000_000);
  });
});

describe('processImage', () => {
  const limits = { maxInputPixels: 50_000_000 };
  const png = (width: number, height: number) =>
    sharp({
      create: { width, height, channels: 4, background: { r: 200, g: 10, b: 10, alpha: 0.5 } },
    })
      .png()
      .toBuffer();

  const solid = (width: number, height: number) =>
    sharp({ create: { width, height, channels: 3, background: '#224488' } })
      .png()
      .toBuffer();

  async function run(input: Buffer, query: Record<string, string>, l = limits) {
    const image = openImage(l);
    image.end(input);
    return processImage(image, parse(query), 'image/png', l, 'in.png');
  }

  it('makes a WebP thumbnail and a grey JPEG on white', async () => {
    const thumb = await run(await png(1000, 500), { op: 'thumbnail' });
    expect(thumb).toMatchObject({ format: 'webp', width: 256, height: 128 });
    expect((await sharp(thumb.data).metadata()).format).toBe('webp');

    const grey = await run(await png(40, 30), { op: 'grayscale', format: 'jpeg' });
    const meta = await sharp(grey.data).metadata();
    expect(meta).toMatchObject({
      format: 'jpeg',
      width: 40,
      height: 30,
      channels: 1,
      space: 'b-w',
    });
  });

  it('pads a contain box with transparency, or white for JPEG', async () => {
    const box = { op: 'resize', width: '50', height: '50', fit: 'contain' };
    const png = await run(await solid(50, 20), { ...box, format: 'png' });
    const corner = async (data: Buffer) =>
      (await sharp(data).raw().toBuffer({ resolveWithObject: true })).data;
    const transparent = await corner(png.data);
    expect(transparent[3]).toBe(0); // alpha of the top-left pixel
    const jpeg = await run(await solid(50, 20), { ...box, format: 'jpeg' });
    expect([...(await corner(jpeg.data)).subarray(0, 3)].every((v) => v > 245)).toBe(true);
  });

  it('refuses an input over the pixel budget with a 413, corrupt data with a 422', async () => {
    await expect(
      run(await png(100, 100), { op: 'grayscale' }, { maxInputPixels: 5000 }),
    ).rejects.toThrow(PayloadTooLargeError);
    const broken = (await png(100, 100)).subarray(0, 200);
    await expect(run(broken, { op: 'grayscale' })).rejects.toThrow(InvalidImageError);
  });

  it('refuses a result over the pixel budget with a 400 naming the option', async () => {
    const err = await run(
      await png(10, 100),
      { op: 'resize', width: '8000' },
      { maxInputPixels: 1_000_000 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as Error).message).toMatch(/^width: the result would be 8000×80000 pixels/);
  });
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  failureReason,
  keepsAnimation,
  readHeader,
  renderVariant,
  UnprocessableImageError,
  VARIANT_SPECS,
  type VariantSpec,
} from './image-variants.js';

const dir = mkdtempSync(join(tmpdir(), 'trove-variants-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let seq = 0;
function onDisk(data: Buffer): string {
  const path = join(dir, `img-${seq++}`);
  writeFileSync(path, data);
  return path;
}

const [thumb, compressed] = VARIANT_SPECS as [VariantSpec, VariantSpec];
const limits = { maxInputPixels: 50_000_000, timeLeftMs: 30_000 };

async function render(data: Buffer, spec: VariantSpec, max = limits.maxInputPixels) {
  const path = onDisk(data);
  const header = await readHeader(path, max);
  return renderVariant(path, spec, header, { ...limits, maxInputPixels: max });
}

const solid = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#336699' } });

describe('variants', () => {
  it('fits the longest edge in 256 px (thumbnail) and 2048 px (compressed), as WebP', async () => {
    const jpeg = await solid(3000, 1000).jpeg().toBuffer();
    expect(await render(jpeg, thumb)).toMatchObject({
      width: 256,
      height: 85,
      contentType: 'image/webp',
    });
    const big = await render(jpeg, compressed);
    expect([big.width, big.height]).toEqual([2048, 683]);
    expect((await sharp(big.data).metadata()).format).toBe('webp');
  });

  it('never enlarges a small image', async () => {
    const png = await solid(100, 40).png().toBuffer();
    expect(await render(png, thumb)).toMatchObject({ width: 100, height: 40 });
  });

  it('applies the EXIF orientation and strips the metadata', async () => {
    const jpeg = await solid(400, 200).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const out = await render(jpeg, compressed);
    expect([out.width, out.height]).toEqual([200, 400]);
    const meta = await sharp(out.data).metadata();
    expect([meta.width, meta.height, meta.exif, meta.orientation]).toEqual([
      200,
      400,
      undefined,
      undefined,
    ]);
  });

  it('gives the same bytes every time (a re-run rewrites the same blob)', async () => {
    const jpeg = await solid(500, 300).jpeg().toBuffer();
    const [a, b] = [await render(jpeg, thumb), await render(jpeg, thumb)];
    expect(a.data.equals(b.data)).toBe(true);
  });

  it('refuses a header over the pixel limit before decoding, naming its size', async () => {
    const png = await solid(300, 200).png().toBuffer();
    const path = onDisk(png);
    const err = await readHeader(path, 300 * 200 - 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnprocessableImageError);
    expect((err as UnprocessableImageError).reason).toBe(
      'too large: 300×200 pixels is more than MAX_INPUT_PIXELS (59999)',
    );
  });

  it('fails a truncated image and bytes that are no image', async () => {
    const noise = await sharp({
      create: {
        width: 600,
        height: 400,
        channels: 3,
        background: '#000',
        noise: { type: 'gaussian', mean: 128, sigma: 40 },
      },
    })
      .jpeg()
      .toBuffer();
    const cut = render(noise.subarray(0, noise.length >> 1), thumb);
    await expect(cut).rejects.toThrow(/^corrupt or truncated image: /);
    await expect(render(Buffer.from('not an image at all'), thumb)).rejects.toThrow(
      'unsupported image format',
    );
  });
});

describe('keepsAnimation', () => {
  const gif = { width: 100, height: 100, frames: 10, format: 'gif' };

  it('keeps the frames of an animation in the compressed copy only', () => {
    expect(keepsAnimation(compressed, gif, 1e6)).toBe(true);
    expect(keepsAnimation(thumb, gif, 1e6)).toBe(false);
    expect(keepsAnimation(compressed, { ...gif, frames: 1 }, 1e6)).toBe(false);
    expect(keepsAnimation(compressed, { ...gif, format: 'tiff' }, 1e6)).toBe(false);
  });

  it('falls back to the first frame when every frame together is over the pixel limit', () => {
    expect(keepsAnimation(compressed, gif, 100 * 100 * 10 - 1)).toBe(false);
  });
});

describe('failureReason', () => {
  const reason = (message: string) => failureReason(new Error(message), 1000);

  it('words what sharp says for a client', () => {
    expect(reason('Input image exceeds pixel limit')).toBe(
      'too large: more pixels than MAX_INPUT_PIXELS (1000)',
    );
    expect(reason('Input file contains unsupported image format')).toBe('unsupported image format');
    expect(reason('timeout: 12% complete\nVipsImage: killed')).toBe(
      'processing took longer than IMAGE_JOB_TIMEOUT_SECONDS',
    );
    expect(
      reason(
        'Input file has corrupt header: VipsJpeg: premature end of JPEG image\nVipsJpeg: again',
      ),
    ).toBe('corrupt or truncated image: VipsJpeg: premature end of JPEG image');
  });
});

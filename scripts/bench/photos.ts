/**
 * Photo-like JPEGs of 2-4 MP for the thumbnail suite, the same bytes on every
 * run (a seeded generator; only another sharp/libvips version changes them).
 *
 * Why not a real photo: the project ships none of that size (its fixture is a
 * 640×480 gradient), and a small picture scaled up is smooth, which
 * compresses, decodes and re-encodes far more cheaply than a photo. What a
 * decoder and an encoder feel is entropy: how many coefficients survive
 * quantisation, and where. So each picture is built like one:
 *
 * - a scene: a vertical gradient and 60 overlapping shapes of power-law
 *   sizes (a few large, many small) in colours around one palette, some
 *   with soft edges, rendered from SVG and softened (blur σ 0.7) as a lens
 *   does;
 * - texture on every scale, multiplied in: value noise at cells of 64, 16 and
 *   4 px (gain ± 0.16, 0.12, 0.10) and per pixel (± 0.04 σ), so surfaces
 *   look like stone, foliage or fabric rather than plastic;
 * - sensor grain: gaussian, σ 3 grey levels per channel;
 * - saved as a camera does: baseline JPEG, quality 90, 4:2:0 chroma.
 *
 * They come out at 0.24-0.35 bytes per pixel (about 0.9 MB for 3 MP), where
 * photos of this size at quality 90 sit. Making the 20 takes about 10 s of
 * CPU; docs/benchmarks.md ("Thumbnails") has the details.
 */
import sharp from 'sharp';

export interface Photo {
  name: string;
  width: number;
  height: number;
  jpeg: Buffer;
}

/** 20 sizes from 2.0 to 4.0 MP: 4:3, 3:2, 16:9 and square, landscape and portrait, as phones and cameras make them. */
export const PHOTO_SIZES: readonly (readonly [number, number])[] = [
  [1632, 1224],
  [1920, 1440],
  [2048, 1536],
  [2304, 1728],
  [1800, 1200],
  [2100, 1400],
  [2400, 1600],
  [2048, 1152],
  [2304, 1296],
  [2560, 1440],
  [1224, 1632],
  [1440, 1920],
  [1536, 2048],
  [1728, 2304],
  [1200, 1800],
  [1400, 2100],
  [1600, 2400],
  [1152, 2048],
  [1600, 1600],
  [1920, 1920],
];

/** mulberry32: a small, fast, seeded PRNG (uniform in [0, 1)). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (r: number, g: number, b: number) =>
  `#${[r, g, b]
    .map((v) =>
      Math.max(0, Math.min(255, Math.round(v)))
        .toString(16)
        .padStart(2, '0'),
    )
    .join('')}`;

/** A random scene as SVG: a gradient and shapes, big ones first (the background), small ones on top. */
function sceneSvg(rand: () => number, width: number, height: number): string {
  // Colours around one palette per picture, as a scene's light gives it, rather than every hue at full strength.
  const base = [40 + rand() * 170, 40 + rand() * 170, 40 + rand() * 170];
  const hue = () =>
    base.map((v) => v + (rand() - 0.5) * 170) as unknown as readonly [number, number, number];
  const [sr, sg, sb] = hue();
  const [gr, gg, gb] = hue();
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`,
    '<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">',
    `<stop offset="0" stop-color="${hex(sr, sg, sb)}"/>`,
    `<stop offset="0.55" stop-color="${hex((sr + gr) / 2 + 40, (sg + gg) / 2 + 40, (sb + gb) / 2 + 40)}"/>`,
    `<stop offset="1" stop-color="${hex(gr * 0.6, gg * 0.6, gb * 0.6)}"/>`,
    '</linearGradient></defs>',
    `<rect width="${width}" height="${height}" fill="url(#g)"/>`,
  ];
  const edge = Math.max(width, height);
  for (let i = 0; i < 60; i++) {
    // Power-law sizes: a few large shapes, many small ones, as objects in a scene.
    const size = edge * 0.5 * Math.pow(1 - i / 60, 2.2) + edge * 0.01;
    const x = rand() * width;
    const y = rand() * height;
    const [r, g, b] = hue();
    const colour = hex(r, g, b);
    const opacity = (0.55 + rand() * 0.45).toFixed(2);
    let fill = `fill="${colour}" fill-opacity="${opacity}"`;
    if (rand() < 0.25) {
      // A soft edge (out of focus, a shadow): a radial gradient fading out, which renders as fast as a flat fill.
      parts.push(
        `<defs><radialGradient id="s${i}"><stop offset="0.4" stop-color="${colour}" stop-opacity="${opacity}"/>` +
          `<stop offset="1" stop-color="${colour}" stop-opacity="0"/></radialGradient></defs>`,
      );
      fill = `fill="url(#s${i})"`;
    }
    const kind = rand();
    if (kind < 0.4) {
      const rot = (rand() * 180).toFixed(1);
      parts.push(
        `<ellipse cx="${x.toFixed(0)}" cy="${y.toFixed(0)}" rx="${(size * (0.3 + rand())).toFixed(0)}" ` +
          `ry="${(size * (0.3 + rand())).toFixed(0)}" transform="rotate(${rot} ${x.toFixed(0)} ${y.toFixed(0)})" ${fill}/>`,
      );
    } else if (kind < 0.7) {
      const rot = (rand() * 90 - 45).toFixed(1);
      const w = size * (0.3 + rand() * 1.5);
      const h = size * (0.3 + rand() * 1.5);
      parts.push(
        `<rect x="${(x - w / 2).toFixed(0)}" y="${(y - h / 2).toFixed(0)}" width="${w.toFixed(0)}" height="${h.toFixed(0)}" ` +
          `transform="rotate(${rot} ${x.toFixed(0)} ${y.toFixed(0)})" ${fill}/>`,
      );
    } else {
      const points = Array.from({ length: 3 + Math.floor(rand() * 5) }, () => {
        const a = rand() * Math.PI * 2;
        const d = size * (0.3 + rand() * 0.9);
        return `${(x + Math.cos(a) * d).toFixed(0)},${(y + Math.sin(a) * d).toFixed(0)}`;
      });
      parts.push(`<polygon points="${points.join(' ')}" ${fill}/>`);
    }
  }
  parts.push('</svg>');
  return parts.join('');
}

/**
 * Brightness texture on every scale, as a gain around 1, one value per pixel:
 * value noise at cells of 64, 16 and 4 px, summed at a quarter of the size
 * (cheap) and scaled up once. The 1 px octave is added with the grain.
 */
async function texture(rand: () => number, width: number, height: number): Promise<Buffer> {
  const qw = Math.ceil(width / 4);
  const qh = Math.ceil(height / 4);
  const sum = new Float32Array(qw * qh).fill(128);
  for (const [cell, strength] of OCTAVES) {
    // The 1-cell octave is used as it is, so its grid is exactly the quarter image.
    const gw = cell === 1 ? qw : Math.ceil(qw / cell) + 1;
    const gh = cell === 1 ? qh : Math.ceil(qh / cell) + 1;
    const grid = Buffer.alloc(gw * gh);
    for (let i = 0; i < grid.length; i++) grid[i] = Math.floor(rand() * 256);
    const layer =
      cell === 1
        ? grid
        : await sharp(grid, { raw: { width: gw, height: gh, channels: 1 } })
            .resize(qw, qh, { kernel: 'cubic', fit: 'fill' })
            .toColourspace('b-w') // else sharp answers three channels
            .raw()
            .toBuffer();
    for (let i = 0; i < sum.length; i++) sum[i]! += (layer[i]! - 127.5) * strength;
  }
  const quarter = Buffer.alloc(qw * qh);
  for (let i = 0; i < sum.length; i++) quarter[i] = sum[i]!;
  return sharp(quarter, { raw: { width: qw, height: qh, channels: 1 } })
    .resize(width, height, { kernel: 'cubic', fit: 'fill' })
    .toColourspace('b-w')
    .raw()
    .toBuffer();
}

/** Texture octaves at a quarter of the size: cell (quarter pixels) and strength (grey levels of the 128-centred gain, ±). */
const OCTAVES: readonly (readonly [number, number])[] = [
  [16, 0.16],
  [4, 0.12],
  [1, 0.1],
];
/** The 1 px octave's strength, as a fraction of the pixel value (±), and the per-channel grain (σ, grey levels). */
const FINE_GAIN = 0.04;
const GRAIN_SIGMA = 3;
const GRAIN_MASK = 0xffff;
const JPEG_QUALITY = 90;

/** 65,536 gaussian samples of σ = 1 (Box-Muller), for the grain. */
function gaussianTable(rand: () => number): Float32Array {
  const table = new Float32Array(GRAIN_MASK + 1);
  for (let i = 0; i < table.length; i++) {
    const u = 1 - rand();
    table[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  return table;
}

/** Photo number `index` (0-based) of `width` × `height`: the same bytes for the same arguments. */
export async function makePhoto(index: number, width: number, height: number): Promise<Photo> {
  const rand = prng(0x7e0e + index * 7919);
  const scene = await sharp(Buffer.from(sceneSvg(rand, width, height)))
    .removeAlpha()
    .blur(0.7) // a lens's softness: no edge in a photo is one pixel sharp
    .raw()
    .toBuffer();
  const pixels = width * height;
  const gain = await texture(rand, width, height);
  const gauss = gaussianTable(rand);
  const out = Buffer.alloc(pixels * 3);
  // xorshift32 picks the gaussian samples: a cheap step per sample, where a PRNG call per sample costs a second per photo.
  let x = (Math.floor(rand() * 0xffffffff) | 1) >>> 0;
  const coarse = 1 / 128;
  for (let p = 0, i = 0; p < pixels; p++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const g = gain[p]! * coarse + gauss[x & GRAIN_MASK]! * FINE_GAIN;
    for (let c = 0; c < 3; c++, i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const v = scene[i]! * g + gauss[x & GRAIN_MASK]! * GRAIN_SIGMA;
      out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  const jpeg = await sharp(out, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: JPEG_QUALITY, chromaSubsampling: '4:2:0' })
    .toBuffer();
  return {
    name: `photo-${String(index + 1).padStart(2, '0')}-${width}x${height}.jpg`,
    width,
    height,
    jpeg,
  };
}

/** The PHOTO_SIZES photos, two at a time (one's pixel loop runs while the other's sharp work does). */
export async function makePhotos(): Promise<Photo[]> {
  const photos: Photo[] = new Array<Photo>(PHOTO_SIZES.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < PHOTO_SIZES.length; i = next++) {
      const [width, height] = PHOTO_SIZES[i]!;
      photos[i] = await makePhoto(i, width, height);
    }
  };
  await Promise.all([lane(), lane()]);
  return photos;
}

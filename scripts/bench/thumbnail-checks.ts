/**
 * What the thumbnail suite checks after the timed runs, so that a fast side
 * is also a right one: every vipsthumbnail output a WebP of the expected
 * size, and every Trove record with both variants of the right sizes and its
 * thumbnail served as recorded. A wrong image is a failure of the run.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { request } from 'undici';
import { VARIANT_CONTENT_TYPE } from '../../worker/image-variants.js';
import type { BenchContext } from './context.js';
import { sha256 } from './payload.js';
import type { Photo } from './photos.js';
import { COPY, THUMB } from './thumbnail-batch.js';
import type { Processing, Uploaded, Variant } from './thumbnail-trove.js';

/** Every output of a vipsthumbnail run must be a WebP whose longest edge is the box's, or the photo's when smaller. */
export async function checkOutputs(
  ctx: BenchContext,
  out: string,
  photos: Photo[],
  kinds: [suffix: string, edge: number][],
): Promise<void> {
  for (const p of photos) {
    for (const [suffix, edge] of kinds) {
      const file = join(out, `${p.name.replace(/\.jpg$/, '')}${suffix}.webp`);
      try {
        const meta = await sharp(file).metadata();
        const want = fitInside(p, edge);
        if (meta.format !== 'webp' || !near(meta, want)) {
          throw new Error(
            `a ${meta.format} of ${meta.width}×${meta.height}, not ${want.width}×${want.height}`,
          );
        }
      } catch (err) {
        ctx.failures.push(`thumbnails: vipsthumbnail output ${file}: ${(err as Error).message}`);
        return;
      }
    }
  }
}

/** Every record: both variants, of the right sizes; every thumbnail served with its sha256, a WebP of its size. */
export async function checkTrove(
  ctx: BenchContext,
  photos: Photo[],
  uploaded: Uploaded[],
  records: Processing[],
): Promise<void> {
  for (const [i, p] of photos.entries()) {
    const { id } = uploaded[i]!;
    const thumb = records[i]?.variants?.thumbnail;
    const copy = records[i]?.variants?.compressed;
    const wrong = (what: string, v: Variant | undefined, edge: number) => {
      const want = fitInside(p, edge);
      if (v && v.content_type === VARIANT_CONTENT_TYPE && near(v, want)) return undefined;
      return `${what} ${v ? `${v.content_type} ${v.width}×${v.height}` : 'missing'}, expected ${VARIANT_CONTENT_TYPE} ${want.width}×${want.height}`;
    };
    const problem =
      wrong('thumbnail', thumb, THUMB.maxEdge) ?? wrong('compressed', copy, COPY.maxEdge);
    if (problem) {
      ctx.failures.push(`thumbnails: file ${id} (${p.name}): ${problem}`);
      continue;
    }
    const url = `${ctx.trove.origin}${ctx.trove.prefix}/files/${id}/thumbnail`;
    try {
      const res = await request(url, { dispatcher: ctx.dispatcher });
      const body = Buffer.from(await res.body.arrayBuffer());
      const meta = res.statusCode === 200 ? await sharp(body).metadata() : undefined;
      if (
        sha256(body) !== thumb!.sha256 ||
        meta?.format !== 'webp' ||
        meta.width !== thumb!.width ||
        meta.height !== thumb!.height
      ) {
        throw new Error(`${res.statusCode}, ${body.length} bytes, not the recorded thumbnail`);
      }
    } catch (err) {
      ctx.failures.push(`thumbnails: GET ${url}: ${(err as Error).message}`);
    }
  }
}

/** The size of `p` fitted inside an `edge` px box, never enlarged. */
function fitInside(p: { width: number; height: number }, edge: number) {
  const scale = Math.min(1, edge / Math.max(p.width, p.height));
  return { width: Math.round(p.width * scale), height: Math.round(p.height * scale) };
}

/** Equal sizes, give or take the one pixel libvips's rounding of the short edge may differ by. */
function near(a: { width?: number; height?: number }, b: { width: number; height: number }) {
  return Math.abs((a.width ?? 0) - b.width) <= 1 && Math.abs((a.height ?? 0) - b.height) <= 1;
}

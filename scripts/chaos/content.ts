/**
 * What the drill uploads: content made from the seed and a key alone, so
 * the checker can tell the right bytes of any range without the drill
 * keeping every file. Most are a real JPEG (the test fixture) with random
 * bytes after its end marker (decoders stop there, so the worker makes a
 * thumbnail, and every file's sha256 differs); one in ten is JPEG magic and
 * noise (processing fails, the original still downloads); a few are over
 * 1 MiB, which the gateway streams rather than buffers.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../test/harness.js';
import { Random } from './random.js';

const PHOTO = readFileSync(join(ROOT, 'test', 'fixtures', 'photo.jpg'));
const KEEP_BELOW = 256 * 1024;

/** FNV-1a of the key: the content's random stream. */
function streamOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class Contents {
  private readonly kept = new Map<string, Buffer>();

  constructor(private readonly seed: number) {}

  of(key: string): Buffer {
    const kept = this.kept.get(key);
    if (kept) return kept;
    const rng = Random.of(this.seed, streamOf(key));
    const noise = rng.next() < 0.1;
    const extra =
      rng.next() < 0.03 ? rng.int(1024 * 1024, 2.5 * 1024 * 1024) : rng.int(0, 40 * 1024);
    const body = noise
      ? Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), rng.bytes(extra + 2000)])
      : Buffer.concat([PHOTO, rng.bytes(extra)]);
    if (body.length < KEEP_BELOW) this.kept.set(key, body);
    return body;
  }

  /** sha256 of bytes [start, endInclusive] of the content under `key`. */
  digest(key: string, start: number, endInclusive: number): string {
    return createHash('sha256')
      .update(this.of(key).subarray(start, endInclusive + 1))
      .digest('hex');
  }
}

/**
 * Payloads: random bytes behind a JPEG SOI/APP0 marker, because the gateway
 * accepts only what its magic bytes say is an image (ALLOWED_TYPES=image/*).
 * Random bytes do not compress, so no layer can cheat with them.
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';

const JPEG_HEAD = Buffer.from([0xff, 0xd8, 0xff, 0xe0]);

/** `size` bytes (at least 4): the JPEG marker, then random bytes. */
export function jpegBody(size: number): Buffer {
  const body = randomBytes(size);
  JPEG_HEAD.copy(body, 0);
  return body;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Writes a `size`-byte JPEG-looking file one chunk at a time, never holding it
 * whole, and returns its sha256.
 */
export async function writeLargeFile(path: string, size: number): Promise<string> {
  const chunkSize = 1024 * 1024;
  const hash = createHash('sha256');
  const out = createWriteStream(path, { highWaterMark: 4 * chunkSize });
  for (let written = 0; written < size;) {
    // A fresh buffer per chunk: the stream may still hold the previous one.
    const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(chunkSize, size - written)));
    if (written === 0) JPEG_HEAD.copy(chunk, 0);
    hash.update(chunk);
    written += chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await finished(out);
  return hash.digest('hex');
}

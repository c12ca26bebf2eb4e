/**
 * The request body as the web stream @tus/server reads: the request's own
 * chunks (no copy, which Readable.toWeb makes), its backpressure, its end,
 * a cut request read as an abort, and a cancel that stops the request.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { webBodyOf } from './tus-node-request.js';

/** A stand-in for the request: a stream of bytes with a high-water mark of 16 bytes. */
function request() {
  const source = new PassThrough({ highWaterMark: 16 });
  return { source, body: webBodyOf(source as unknown as IncomingMessage) };
}

describe('webBodyOf', () => {
  it('passes the request chunks on as they are, then ends', async () => {
    const { source, body } = request();
    const chunks = [Buffer.from('first chunk'), Buffer.from('second')];
    for (const chunk of chunks) source.write(chunk);
    source.end();
    const reader = body.getReader();
    const read: Uint8Array[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) read.push(r.value);
    // The same buffers, not copies of them.
    expect(read).toHaveLength(2);
    expect(read[0]).toBe(chunks[0]);
    expect(read[1]).toBe(chunks[1]);
  });

  it('pauses the request while its queue is full, and resumes it when read', async () => {
    const { source, body } = request();
    source.write(Buffer.alloc(64));
    await new Promise((r) => setImmediate(r));
    expect(source.isPaused()).toBe(true);
    const reader = body.getReader();
    expect((await reader.read()).value).toHaveLength(64);
    await new Promise((r) => setImmediate(r));
    expect(source.isPaused()).toBe(false);
  });

  it('reads a request cut off as an abort', async () => {
    const { source, body } = request();
    source.write(Buffer.from('part'));
    source.destroy(); // the client went away: a premature close
    const reader = body.getReader();
    const readAll = async () => {
      while (!(await reader.read()).done);
    };
    await expect(readAll()).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('stops the request when the reader cancels', async () => {
    const { source, body } = request();
    await body.cancel(new Error('not wanted'));
    expect(source.destroyed).toBe(true);
  });
});

/**
 * drainUnread through a real HTTP server and Node's own client, which writes
 * its whole body before it reads: the refusal reaches it once the rest of the
 * body was read; past the bound, the answer goes without waiting for it all.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { drainUnread, type DrainBound } from './unread-body.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/** A server that refuses every request with 413 before reading its body, draining it under `bound`. */
async function refusing(bound: DrainBound, seen: { bytes: number }): Promise<number> {
  server = createServer((req: IncomingMessage, res) => {
    req.on('data', (chunk: Buffer) => (seen.bytes += chunk.length));
    req.pause();
    void drainUnread(req, bound).then(() => res.writeHead(413).end('too large'));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

/** PUTs `size` bytes, all written before the answer is read; answers its status or the write's error. */
function put(port: number, size: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ port, method: 'PUT', headers: { 'content-length': String(size) } });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    // The body still being written when the server closes: the socket's EPIPE is expected here.
    req.on('socket', (socket) => socket.on('error', () => {}));
    req.end(Buffer.alloc(size));
  });
}

describe('drainUnread', () => {
  it('lets a client that writes its whole body first read the refusal', async () => {
    const seen = { bytes: 0 };
    const port = await refusing({ maxBytes: 64 * 1024 * 1024, maxMs: 5000 }, seen);
    expect(await put(port, 16 * 1024 * 1024)).toBe(413);
    expect(seen.bytes).toBe(16 * 1024 * 1024);
  });

  it('answers past its bound without reading the rest', async () => {
    const seen = { bytes: 0 };
    const port = await refusing({ maxBytes: 1024 * 1024, maxMs: 5000 }, seen);
    await put(port, 64 * 1024 * 1024); // 413 or a cut connection: either way, not all read
    expect(seen.bytes).toBeLessThan(32 * 1024 * 1024);
  });
});

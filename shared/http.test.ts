import { Hono } from 'hono';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { close, errorHandler, listen } from './http.js';
import { createLogger } from './logger.js';

let server: Awaited<ReturnType<typeof listen>> | undefined;
afterEach(async () => {
  if (server) await close(server, 100);
  server = undefined;
});

/** A real server whose one route fails as a dropped connection to a storage node does. */
async function serve(): Promise<string> {
  const app = new Hono();
  app.onError(errorHandler(createLogger('test', 'silent')));
  app.get('/peer-reset', () => {
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  });
  server = await listen(app, '127.0.0.1', 0);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('errorHandler', () => {
  it('answers a client still waiting with a JSON 503 when a peer drops its connection', async () => {
    const res = await fetch(`${await serve()}/peer-reset`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(await res.json()).toEqual({
      error: { code: 'PEER_CONNECTION_LOST', message: expect.stringContaining('storage node') },
    });
  });
});

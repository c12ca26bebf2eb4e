import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import type { AddressInfo } from 'node:net';
import { request } from 'node:http';
import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { close, listen } from './http.js';
import { createLogger } from './logger.js';
import { requestLog } from './request-log.js';

/** An app with the middleware first, as the gateway and the nodes have it; `lines()` is its log. */
function app(onEnd?: (c: Context, status: number) => void) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log = createLogger('test', 'debug', { format: 'json', stream });
  const hono = new Hono();
  hono.use('*', requestLog(log, { quietPaths: ['/health'], onEnd }));
  hono.get('/health', (c) => c.json({ ok: true }));
  hono.get('/files/:id', async (c) => {
    await new Promise((r) => setTimeout(r, 2));
    log.info({ id: c.req.param('id') }, 'inside the handler');
    return c.text('hello');
  });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { hono, lines };
}

describe('requestLog', () => {
  it('echoes a valid X-Request-Id and logs the handler and the request under it', async () => {
    const { hono, lines } = app();
    const res = await hono.request('/files/abc', { headers: { 'x-request-id': 'trace-me.1' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('trace-me.1');
    const [inside, request] = lines();
    expect(inside).toMatchObject({ msg: 'inside the handler', request_id: 'trace-me.1' });
    expect(request).toMatchObject({
      msg: 'request',
      level: 30,
      request_id: 'trace-me.1',
      method: 'GET',
      path: '/files/abc',
      route: '/files/:id',
      status: 200,
    });
    expect(request!.duration_ms).toBeGreaterThanOrEqual(1);
  });

  it('makes an id when none or a bad one comes, and never echoes the bad one', async () => {
    const { hono, lines } = app();
    const bad = ['x'.repeat(129), 'a b', '<script>'];
    const ids = [(await hono.request('/files/1')).headers.get('x-request-id')];
    for (const id of bad)
      ids.push(
        (await hono.request('/files/1', { headers: { 'x-request-id': id } })).headers.get(
          'x-request-id',
        ),
      );
    for (const id of ids) expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(ids).size).toBe(ids.length);
    const logged = lines()
      .filter((l) => l.msg === 'request')
      .map((l) => l.request_id);
    expect(logged).toEqual(ids);
  });

  it('logs probes at debug, unknown routes without a route, errors with their status', async () => {
    const { hono, lines } = app();
    await hono.request('/health');
    const missing = await hono.request('/nowhere', { method: 'POST' });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-request-id')).toBeTruthy();
    const [probe, notFound] = lines();
    expect(probe).toMatchObject({ level: 20, path: '/health', status: 200 });
    expect(notFound).toMatchObject({ level: 30, method: 'POST', path: '/nowhere', status: 404 });
    expect(notFound!.route).toBeUndefined();
  });

  it('calls onEnd once per request, with the status written, when the response has gone out', async () => {
    const ended: [string, number][] = [];
    const { hono } = app((c, status) => ended.push([c.req.path, status]));
    const server = await listen(
      hono as unknown as Hono<{ Bindings: HttpBindings }>,
      '127.0.0.1',
      0,
    );
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      expect(await (await fetch(`${base}/files/a`)).text()).toBe('hello');
      expect((await fetch(`${base}/nowhere`)).status).toBe(404);
      await vi.waitFor(() => expect(ended).toHaveLength(2));
      expect(ended).toEqual([
        ['/files/a', 200],
        ['/nowhere', 404],
      ]);
    } finally {
      await close(server, 100);
    }
  });

  it('logs a request whose client left while the handler was still at work, with its answer', async () => {
    const ended: number[] = [];
    const { hono, lines } = app((_c, status) => ended.push(status));
    // A handler that outlives its client (a download waiting for a node's first byte).
    let started!: () => void;
    const handling = new Promise<void>((resolve) => (started = resolve));
    let left!: () => void;
    const clientLeft = new Promise<void>((resolve) => (left = resolve));
    const server = await listen(
      (hono as unknown as Hono<{ Bindings: HttpBindings }>).get('/slow', async (c) => {
        c.env.outgoing.once('close', left);
        started();
        await clientLeft;
        return c.text('too late', 503);
      }),
      '127.0.0.1',
      0,
    );
    try {
      const { port } = server.address() as AddressInfo;
      const req = request({ port, path: '/slow', headers: { 'x-request-id': 'gone-early' } });
      req.on('error', () => undefined);
      req.end();
      await handling;
      req.destroy();
      await clientLeft;
      await vi.waitFor(
        () =>
          expect(lines().find((l) => l.msg === 'request')).toMatchObject({
            request_id: 'gone-early',
            path: '/slow',
            status: 503,
            aborted: true,
          }),
        { timeout: 2000 },
      );
      expect(ended).toEqual([503]);
    } finally {
      await close(server, 100);
    }
  });
});

import { serve, type HttpBindings } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { Hono, type Context } from 'hono';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/logger.js';
import { requestLog } from '../../shared/request-log.js';
import { S3Metrics, UNROUTED } from './s3-metrics.js';
import type { S3Operation } from './s3-request.js';

/**
 * A real Node server counting as the S3 port does, from the request log's
 * end: the operation from a header, the status and body from the query.
 */
async function server(registry: Registry) {
  const app = new Hono<{ Bindings: HttpBindings }>();
  const metrics = new S3Metrics(registry);
  const onEnd = (c: Context<{ Bindings: HttpBindings }>, status: number) =>
    metrics.record(c.req.header('x-op') as S3Operation | undefined, status, c.env.incoming.socket);
  app.use('*', requestLog(createLogger('test', 'silent'), { onEnd }));
  app.all('*', async (c) => {
    await c.req.arrayBuffer();
    const status = Number(c.req.query('status') ?? 200) as 200;
    return c.body('x'.repeat(Number(c.req.query('bytes') ?? 0)), status);
  });
  const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((r) => s.once('listening', r));
  servers.push(s);
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const servers: ReturnType<typeof serve>[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function value(registry: Registry, name: string, labels: Record<string, string>) {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const found = metric?.values.find((v) =>
    Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return found?.value ?? 0;
}

describe('S3Metrics', () => {
  it('counts requests by operation and the status written', async () => {
    const registry = new Registry();
    const base = await server(registry);
    const send = (op: string | undefined, query = '') =>
      fetch(`${base}/b/k${query}`, { headers: op ? { 'x-op': op } : {} }).then((r) => r.text());
    await send('GetObject');
    await send('GetObject');
    await send('GetObject', '?status=503');
    await send(undefined, '?status=400');
    // Counted when the response has gone out: poll until the last one is in.
    await expect.poll(() => value(registry, 'trove_s3_requests_total', { status: '400' })).toBe(1);
    const count = (operation: string, status: string) =>
      value(registry, 'trove_s3_requests_total', { operation, status });
    expect(await count('GetObject', '200')).toBe(2);
    expect(await count('GetObject', '503')).toBe(1);
    expect(await count(UNROUTED, '400')).toBe(1);
  });

  it('counts the bytes each way on the wire, bodies included', async () => {
    const registry = new Registry();
    const base = await server(registry);
    await fetch(`${base}/b/k`, {
      method: 'PUT',
      headers: { 'x-op': 'PutObject' },
      body: Buffer.alloc(100_000),
    }).then((r) => r.text());
    await fetch(`${base}/b/k?bytes=50000`, { headers: { 'x-op': 'GetObject' } }).then((r) =>
      r.text(),
    );
    await expect
      .poll(() => value(registry, 'trove_s3_requests_total', { operation: 'GetObject' }))
      .toBe(1);
    const bytesIn = await value(registry, 'trove_s3_bytes_total', { direction: 'in' });
    const bytesOut = await value(registry, 'trove_s3_bytes_total', { direction: 'out' });
    // Bodies plus headers: a few hundred bytes of them each way per request.
    expect(bytesIn).toBeGreaterThanOrEqual(100_000);
    expect(bytesIn).toBeLessThan(102_000);
    expect(bytesOut).toBeGreaterThanOrEqual(50_000);
    expect(bytesOut).toBeLessThan(52_000);
  });
});

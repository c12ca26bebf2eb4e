import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { matching, metricValue, parseMetrics } from '../test/metrics-text.js';
import { UnauthorizedError } from './errors.js';
import { errorHandler, notFoundHandler } from './http.js';
import { createLogger } from './logger.js';
import {
  createHttpMetrics,
  createMetricsApp,
  createRegistry,
  httpMetricsMiddleware,
  metricsHandler,
} from './metrics.js';

/** An app shaped like the services': metrics middleware first, routes with ids, an auth middleware, errors. */
function testApp() {
  const registry = createRegistry({ process: false });
  const app = new Hono();
  app.onError(errorHandler(createLogger('test', 'silent')));
  app.notFound(notFoundHandler);
  app.use('*', httpMetricsMiddleware(createHttpMetrics(registry)));
  app.get('/metrics', metricsHandler(registry));
  app.get('/files/:id', (c) => c.json({ id: c.req.param('id') }));
  app.use('/private/*', async (c, next) => {
    if (c.req.header('authorization') !== 'yes') throw new UnauthorizedError();
    await next();
  });
  app.get('/private/:name', (c) => c.text('secret'));
  // A sub-app with its own error handler: Hono wraps its handlers when mounting it.
  const sub = new Hono();
  sub.onError((_err, c) => c.json({ error: 'sub' }, 418));
  sub.get('/items/:id', (c) => c.json({ id: c.req.param('id') }));
  sub.get('/broken', () => {
    throw new Error('boom');
  });
  app.route('/sub', sub);
  app.post('/slow', async (c) => {
    await new Promise((r) => setTimeout(r, 120));
    return c.body(null, 204);
  });
  const scrape = async () => parseMetrics(await (await app.request('/metrics')).text());
  return { app, scrape };
}

const REQUESTS = 'trove_http_requests_total';
const DURATION = 'trove_http_request_duration_seconds';

describe('HTTP metrics middleware', () => {
  it('labels requests with the route pattern, never the raw path', async () => {
    const { app, scrape } = testApp();
    for (const id of ['a', 'b', 'c']) await app.request(`/files/${id}`);
    const samples = await scrape();
    expect(
      metricValue(samples, REQUESTS, { route: '/files/:id', method: 'GET', status: '200' }),
    ).toBe(3);
    expect(matching(samples, REQUESTS).some((s) => /\/files\/[abc]/.test(s.labels.route!))).toBe(
      false,
    );
  });

  it('counts unknown paths under route="unmatched", with their 404', async () => {
    const { app, scrape } = testApp();
    await app.request('/nope/1');
    await app.request('/nope/2');
    // Only the auth middleware matches this path: still no route.
    await app.request('/private/a/b', { headers: { authorization: 'yes' } });
    const samples = await scrape();
    expect(metricValue(samples, REQUESTS, { route: 'unmatched', status: '404' })).toBe(3);
    expect(matching(samples, REQUESTS).map((s) => s.labels.route)).not.toContain('/private/*');
  });

  it('records the status an error answered with, under the route it was meant for', async () => {
    const { app, scrape } = testApp();
    await app.request('/private/x');
    await app.request('/private/y', { headers: { authorization: 'yes' } });
    const samples = await scrape();
    expect(metricValue(samples, REQUESTS, { route: '/private/:name', status: '401' })).toBe(1);
    expect(metricValue(samples, REQUESTS, { route: '/private/:name', status: '200' })).toBe(1);
  });

  it('labels the routes of a mounted sub-app by their full pattern', async () => {
    const { app, scrape } = testApp();
    await app.request('/sub/items/42');
    await app.request('/sub/broken');
    await app.request('/sub/nothing');
    const samples = await scrape();
    expect(metricValue(samples, REQUESTS, { route: '/sub/items/:id', status: '200' })).toBe(1);
    expect(metricValue(samples, REQUESTS, { route: '/sub/broken', status: '418' })).toBe(1);
    expect(metricValue(samples, REQUESTS, { route: 'unmatched', status: '404' })).toBe(1);
  });

  it('keeps label values bounded: odd methods are "other"', async () => {
    const { app, scrape } = testApp();
    await app.request('/files/a', { method: 'PROPFIND' });
    const samples = await scrape();
    expect(metricValue(samples, REQUESTS, { method: 'other', route: 'unmatched' })).toBe(1);
  });

  it('times requests into the histogram, by route', async () => {
    const { app, scrape } = testApp();
    await app.request('/slow', { method: 'POST' });
    await app.request('/files/a');
    const samples = await scrape();
    const slow = { route: '/slow', method: 'POST', status: '204' };
    expect(metricValue(samples, `${DURATION}_count`, slow)).toBe(1);
    expect(metricValue(samples, `${DURATION}_sum`, slow)).toBeGreaterThanOrEqual(0.1);
    // Cumulative buckets: not within 50 ms, within 250 ms (the handler waits 120 ms).
    expect(metricValue(samples, `${DURATION}_bucket`, { ...slow, le: '0.05' })).toBe(0);
    expect(metricValue(samples, `${DURATION}_bucket`, { ...slow, le: '0.25' })).toBe(1);
    expect(metricValue(samples, `${DURATION}_bucket`, { ...slow, le: '+Inf' })).toBe(1);
    expect(metricValue(samples, `${DURATION}_count`, { route: '/files/:id' })).toBe(1);
  });

  it('keeps each registry apart (no global default registry)', async () => {
    const one = testApp();
    const two = testApp();
    await one.app.request('/files/a');
    expect(metricValue(await one.scrape(), REQUESTS, { route: '/files/:id' })).toBe(1);
    expect(metricValue(await two.scrape(), REQUESTS, { route: '/files/:id' })).toBe(0);
  });
});

describe('createMetricsApp', () => {
  it('serves the process metrics in the Prometheus format, and /health', async () => {
    const app = createMetricsApp(createRegistry());
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parseMetrics(await res.text());
    expect(metricValue(samples, 'trove_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(matching(samples, 'trove_process_cpu_seconds_total')).toHaveLength(1);
    expect(matching(samples, 'trove_nodejs_eventloop_lag_seconds')).toHaveLength(1);
    expect((await app.request('/health')).status).toBe(200);
    expect((await app.request('/other')).status).toBe(404);
  });
});

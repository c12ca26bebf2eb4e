/**
 * Prometheus metrics, shared by every process (docs/metrics.md): a registry
 * per process (never prom-client's global one, so tests can build several
 * apps side by side), the process figures prom-client collects (CPU, memory,
 * event-loop lag), and the HTTP request counter and latency histogram.
 *
 * Each service adds its own metrics to its registry (gateway/metrics.ts,
 * storage-node/metrics.ts, worker/metrics.ts) and serves it at GET /metrics.
 */
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { COMPOSED_HANDLER } from 'hono/utils/constants';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { notFoundHandler } from './http.js';

export const METRIC_PREFIX = 'trove_';

/** A registry of its own, with the process metrics (`trove_process_*`, `trove_nodejs_*`) unless `process` is false. */
export function createRegistry(o: { process?: boolean } = {}): Registry {
  const registry = new Registry();
  if (o.process !== false) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

/** Methods kept as they are in labels; anything else (a client may send any token) is `other`. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/** Label of a request that no route answered (404 from notFound), so unknown paths never become labels. */
export const UNMATCHED = 'unmatched';

/**
 * The route pattern that answered (`/download/:id`), never the raw path: ids
 * must not become label values. A handler is a route function that takes no
 * `next` (middleware does); the first matched handler is the one that
 * answers. A request only middleware matched (auth on `/upload/*` for an
 * unknown path) is `unmatched`.
 */
export function routeLabel(c: Context): string {
  const handler = matchedRoutes(c).find((r) => r.method !== 'ALL' && isHandler(r.handler));
  return handler?.path ?? UNMATCHED;
}

type RouteFn = ((...args: never[]) => unknown) & { [COMPOSED_HANDLER]?: RouteFn };

/** A route function, as opposed to middleware; `app.route()` wraps a sub-app's handlers, keeping the original. */
function isHandler(fn: RouteFn): boolean {
  return (fn[COMPOSED_HANDLER] ?? fn).length < 2;
}

export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'other';
}

export interface HttpMetrics {
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route' | 'status'>;
}

/** Latency buckets, in s: from a cached 404 to a large upload. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export function createHttpMetrics(registry: Registry): HttpMetrics {
  return {
    requests: new Counter({
      name: `${METRIC_PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: 'Time from a request reaching its route to the last byte of its response handed to the OS (streamed bodies included), by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
  };
}

/**
 * Middleware counting every request and timing it. Under the Node server
 * the figures are taken when the response has gone out (its `finish`, or
 * `close` when the client left first), so a download's duration covers its
 * body and its status is the one written, even by handlers that write to the
 * socket themselves. Without Node bindings (`app.request()` in tests) they
 * are taken when the handler returns.
 */
export function httpMetricsMiddleware(metrics: HttpMetrics): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const labels = { method: methodLabel(c.req.method), route: routeLabel(c) };
    const record = (status: number) => {
      const all = { ...labels, status: String(status) };
      metrics.requests.inc(all);
      metrics.duration.observe(all, (performance.now() - started) / 1000);
    };
    const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
    if (!outgoing) return record(c.res.status);
    // Nothing written yet: the status is the one the Node adapter is about to write.
    const status = () => (outgoing.headersSent ? outgoing.statusCode : c.res.status);
    if (outgoing.writableFinished || outgoing.destroyed) return record(status());
    let done = false;
    const once = () => {
      if (done) return;
      done = true;
      record(status());
    };
    outgoing.once('finish', once);
    outgoing.once('close', once);
  };
}

/** GET /metrics: the registry in the Prometheus text format. */
export function metricsHandler(registry: Registry) {
  return async (c: Context) =>
    c.body(await registry.metrics(), 200, { 'content-type': registry.contentType });
}

/** A Hono app answering only GET /metrics and GET /health, for a process with no API of its own (the worker). */
export function createMetricsApp(registry: Registry): Hono<{ Bindings: HttpBindings }> {
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.use('*', httpMetricsMiddleware(createHttpMetrics(registry)));
  app.get('/metrics', metricsHandler(registry));
  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.notFound(notFoundHandler);
  return app;
}

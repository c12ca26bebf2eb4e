/**
 * HTTP plumbing shared by the services: the one place where errors become
 * responses, and the server settings every process listens with.
 */
import { createAdaptorServer } from '@hono/node-server';
import type { HttpBindings, ServerType } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context, Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  TooManyRequestsError,
  TroveError,
  errorBody,
  isDatabaseBusy,
  isDisconnect,
} from './errors.js';
import type { Logger } from './logger.js';

/** Hono `onError`: TroveErrors keep their status and code; anything else is a logged 500. */
export function errorHandler(log: Logger) {
  return (err: Error, c: Context) => {
    const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
    if (outgoing?.headersSent) {
      // A response is already under way: a cut-short body is the only honest signal left.
      log.warn({ err: err.message, path: c.req.path }, 'error after the response started');
      outgoing.destroy();
      return RESPONSE_ALREADY_SENT;
    }
    if (isDisconnect(err)) {
      // Our client left: nobody to answer (499 is only for the logs).
      if (clientGone(c)) return c.body(null, 499 as ContentfulStatusCode);
      // A peer of ours (a storage node) dropped the connection while the client waits for an answer.
      log.warn({ err: err.message, path: c.req.path }, 'a connection to a peer dropped');
      c.header('retry-after', '2');
      return c.json(
        errorBody('PEER_CONNECTION_LOST', 'a storage node dropped the connection; try again'),
        503,
      );
    }
    if (isDatabaseBusy(err)) {
      log.warn({ err: err.message, path: c.req.path }, 'metadata database busy');
      c.header('retry-after', '2');
      return c.json(
        errorBody('METADATA_BUSY', 'the metadata database is busy; try again shortly'),
        503,
      );
    }
    if (err instanceof TroveError) {
      if (err.status >= 500) log.warn({ code: err.code, err: err.message }, 'request failed');
      // Every 503 is a passing state (nodes, Redis or a limit coming back); a probe period is a fair wait.
      if (err.status === 503) c.header('retry-after', '2');
      if (err instanceof TooManyRequestsError)
        c.header('retry-after', String(err.retryAfterSeconds));
      return c.json(err.body(), err.status as ContentfulStatusCode);
    }
    log.error({ err, method: c.req.method, path: c.req.path }, 'unhandled error');
    return c.json(errorBody('INTERNAL', 'internal error'), 500);
  };
}

/**
 * Whether the client's connection is gone. Without a socket (app.request() in
 * tests) the client is taken to be there: it is waiting for the answer.
 */
function clientGone(c: Context): boolean {
  const env = c.env as Partial<HttpBindings> | undefined;
  const socket = env?.incoming?.socket;
  return env?.outgoing?.destroyed === true || socket?.destroyed === true;
}

export function notFoundHandler(c: Context) {
  return c.json(errorBody('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`), 404);
}

/** Starts an HTTP server for `app` and resolves once it listens. */
export async function listen(
  app: Hono<any>, // eslint-disable-line @typescript-eslint/no-explicit-any
  host: string,
  port: number,
): Promise<ServerType> {
  const server = createAdaptorServer({
    fetch: app.fetch,
    hostname: host,
    serverOptions: {
      // Large uploads may legitimately take longer than Node's 5-minute default; idle sockets are cut below.
      requestTimeout: 0,
      keepAliveTimeout: 65_000,
    },
  });
  server.setTimeout(120_000);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** Stops accepting connections and waits up to `graceMs` for requests in flight. */
export function close(server: ServerType, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      resolve();
    }, graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  });
}

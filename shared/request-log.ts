/**
 * The first middleware of the gateway and of every storage node: gives the
 * request its id (a valid incoming `X-Request-Id`, else a new one), answers
 * with it in `X-Request-Id`, runs the rest of the request under it (so every
 * line logged meanwhile, and every node request or job sent, carries it), and
 * logs one line when the response has ended.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from './logger.js';
import { REQUEST_ID_HEADER, requestIdFrom, runWithRequestId } from './request-context.js';

export interface RequestLogOptions {
  /** Paths polled by probes and scrapers (/health, /metrics): logged at debug, so they do not flood. */
  quietPaths?: string[];
  /** Headers that answer the request id besides X-Request-Id (the S3 port's x-amz-request-id). */
  idHeaders?: string[];
  /**
   * Called once the response has gone out (or the client left), with the
   * status written: a server's own per-request counts (the S3 port's
   * metrics) ride on the log line's end instead of a listener of their own.
   */
  onEnd?: (c: Context, status: number) => void;
}

export function requestLog(log: Logger, opts: RequestLogOptions = {}): MiddlewareHandler {
  const quiet = new Set(opts.quietPaths ?? []);
  const idHeaders = [REQUEST_ID_HEADER, ...(opts.idHeaders ?? [])];
  return (c, next) => {
    const requestId = requestIdFrom(c.req.header(REQUEST_ID_HEADER));
    return runWithRequestId(requestId, async () => {
      const started = performance.now();
      const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
      // On the Node response itself, so handlers that write it directly (blob reads) send it too.
      for (const name of idHeaders) {
        if (outgoing) outgoing.setHeader(name, requestId);
        else c.header(name, requestId);
      }
      try {
        await next();
      } finally {
        const level = quiet.has(c.req.path) ? 'debug' : 'info';
        const route = matchedRoute(c);
        if (outgoing) {
          // Under the request's id again: 'close' fires outside its context. (Not
          // AsyncResource.bind: it builds a deprecation wrapper per call, 1 % of a node's CPU.)
          const ended = () => {
            // A client that left before anything was written: the status the handler answered.
            const status = outgoing.headersSent ? outgoing.statusCode : c.res.status;
            opts.onEnd?.(c, status);
            runWithRequestId(requestId, () =>
              log[level](
                {
                  ...requestFields(c, route, started),
                  status,
                  bytes_out: contentLength(outgoing.getHeader('content-length')),
                  ...(!outgoing.writableFinished && { aborted: true }),
                },
                'request',
              ),
            );
          };
          // Streamed bodies go on after next() returns: the line waits for the real end.
          // A client that left while the handler ran has closed it already: no
          // 'close' is coming, so the line goes now, or the request is never logged.
          if (outgoing.closed) ended();
          else outgoing.once('close', ended);
        } else {
          opts.onEnd?.(c, c.res.status);
          log[level](
            {
              ...requestFields(c, route, started),
              status: c.res.status,
              bytes_out: contentLength(c.res.headers.get('content-length')),
            },
            'request',
          );
        }
      }
    });
  };
}

function requestFields(c: Context, route: string | undefined, started: number) {
  return {
    method: c.req.method,
    path: c.req.path,
    route,
    duration_ms: Math.round(performance.now() - started),
    bytes_in: contentLength(c.req.header('content-length')),
  };
}

/** The pattern of the route that answered (`/files/:id`), or undefined when none matched. */
function matchedRoute(c: Context): string | undefined {
  const path = routePath(c, -1);
  return path === '' || path === '*' || path === '/*' ? undefined : path;
}

function contentLength(value: unknown): number | undefined {
  const n = Number(value);
  return value !== undefined && value !== null && value !== '' && Number.isSafeInteger(n) && n >= 0
    ? n
    : undefined;
}

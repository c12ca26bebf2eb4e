/**
 * The storage node's internal HTTP API (see docs/storage-node.md):
 *   PUT/GET/HEAD/DELETE /blobs/:key, POST /blobs/:key/compose (concatenate
 *   parts), GET /blobs (paged listing), GET /health, POST /scrub (start a
 *   scrub pass now).
 * GET /metrics (Prometheus). Everything but /health and /metrics needs the cluster secret.
 */
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono, type MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { isAuthorized } from '../shared/cluster-secret.js';
import {
  BadRequestError,
  CorruptBlobError,
  NotFoundError,
  UnauthorizedError,
} from '../shared/errors.js';
import { errorHandler, notFoundHandler } from '../shared/http.js';
import { SHA256_HEX } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { requestLog } from '../shared/request-log.js';
import type { NodeClient } from '../shared/node-client.js';
import {
  H,
  MAX_COMPOSE_PARTS,
  type BlobListing,
  type Composed,
  type NodeHealth,
  type PutReport,
  type ScrubStarted,
} from '../shared/node-protocol.js';
import { contentRange, parseRange } from '../shared/range.js';
import { MemoryBudget } from '../shared/memory-budget.js';
import { pipeChain, readExactly } from '../shared/streams.js';
import { SMALL_BLOB, type BlobInfo, type BlobStore } from './blob-store.js';
import { replicateWrite } from './chain.js';
import { composeBlob } from './compose.js';
import { blobKey, chainParams, jsonBody, jsonBodyLimit, keyParam } from './request-params.js';
import { stagingRoutes } from './staging-routes.js';
import type { StagingStore } from './staging-store.js';
import type { ScrubStatus } from './scrubber.js';
import { NodeMetrics } from './metrics.js';
import { httpMetricsMiddleware, metricsHandler } from '../shared/metrics.js';

export interface NodeAppDeps {
  id: string;
  secret: string;
  store: BlobStore;
  /** Staged uploads (PUT /staging/:key?offset=N, then a commit into a blob). */
  staging: StagingStore;
  client: NodeClient;
  log: Logger;
  /** The scrubber's state, reported under `scrub` in /health. */
  scrubStatus?: () => ScrubStatus;
  /** Starts a scrub pass now unless one runs (false then): `POST /scrub`. */
  startScrub?: () => boolean;
  /** Prometheus metrics; createApp makes them when not given. */
  metrics?: NodeMetrics;
}

/** Memory for small blobs taken whole by writes in flight (each at most SMALL_BLOB); beyond it they stream. */
const SMALL_WRITE_MEMORY = 32 * 1024 * 1024;

/** POST /blobs/:key/compose. Strict: a misspelt `sha256` must not silently skip the check. */
const composeRequest = z.strictObject({
  parts: z.array(blobKey).min(1).max(MAX_COMPOSE_PARTS),
  sha256: z.string().regex(SHA256_HEX, 'must be 64 lowercase hex digits').optional(),
});

export function createApp(deps: NodeAppDeps) {
  const chainDeps = {
    selfId: deps.id,
    store: deps.store,
    staging: deps.staging,
    client: deps.client,
    log: deps.log,
  };
  const smallWrites = new MemoryBudget(SMALL_WRITE_MEMORY);
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);
  // First: everything after it runs under the request's id (X-Request-Id).
  app.use('*', requestLog(deps.log, { quietPaths: ['/health', '/metrics'] }));
  const metrics = deps.metrics ?? new NodeMetrics(deps);
  app.use('*', httpMetricsMiddleware(metrics.http));
  // Open like /health: the node listens on loopback (or a private network) by default.
  app.get('/metrics', metricsHandler(metrics.registry));

  app.get('/health', async (c) => {
    const u = await deps.store.usage();
    return c.json({
      id: deps.id,
      status: 'ok',
      objects: u.objects,
      bytes: u.bytes,
      free_bytes: u.freeBytes,
      total_bytes: u.totalBytes,
      uptime_s: Math.round(process.uptime()),
      ...(deps.scrubStatus && { scrub: deps.scrubStatus() }),
    } satisfies NodeHealth);
  });

  const requireSecret: MiddlewareHandler = async (c, next) => {
    if (!isAuthorized(c.req.header('authorization'), deps.secret)) throw new UnauthorizedError();
    await next();
  };
  app.use('/blobs', requireSecret);
  app.use('/blobs/*', requireSecret);
  app.use('/scrub', requireSecret);
  app.use('/staging', requireSecret);
  app.use('/staging/*', requireSecret);

  // The admin API's "scrub now": 202 at once, the pass runs in the background.
  app.post('/scrub', (c) => {
    if (!deps.startScrub || !deps.scrubStatus)
      throw new NotFoundError('this node runs no scrubber', 'NO_SCRUBBER');
    const started = deps.startScrub();
    return c.json({ id: deps.id, started, scrub: deps.scrubStatus() } satisfies ScrubStarted, 202);
  });

  app.get('/blobs', async (c) => {
    const limit = Number(c.req.query('limit') ?? 1000);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new BadRequestError('limit must be an integer from 1 to 10000');
    }
    const after = c.req.query('after');
    if (after !== undefined && !/^[0-9a-f]{2}\/[A-Za-z0-9._@-]+$/.test(after)) {
      throw new BadRequestError('after must be a cursor returned by a previous page');
    }
    const page: BlobListing = await deps.store.list(after, limit);
    return c.json(page);
  });

  app.put('/blobs/:key', async (c) => {
    const key = keyParam(c);
    const { chain, hop, expectedSha256, length } = chainParams(c, deps.id);
    deps.log.debug({ key, hop, chain: chain.map((n) => n.id) }, 'blob write started');
    // A small blob is taken whole first, while the node-wide budget has room: one write
    // here and one to the successor instead of a stream through stages.
    const whole =
      length !== undefined && length > 0 && length <= SMALL_BLOB && smallWrites.tryTake(length);
    let report: PutReport;
    try {
      const body = whole ? await readExactly(c.env.incoming, length) : c.env.incoming;
      // Throws BlobNotStoredError, answered with the same report, when this node could not store it.
      report = await replicateWrite(chainDeps, {
        key,
        body,
        chain,
        expectedSha256,
        contentLength: length,
        hop,
      });
    } finally {
      if (whole) smallWrites.give(length);
    }
    const self = report.replicas[0];
    if (self?.ok) metrics.blobWritten(self.size);
    return c.json(report, 201);
  });

  // Concatenates parts already on this node into one blob: the end of a resumable upload.
  app.post('/blobs/:key/compose', jsonBodyLimit('a compose body'), async (c) => {
    const key = keyParam(c);
    const req = await jsonBody(c, composeRequest, '{"parts":["key",…],"sha256"?}');
    if (req.parts.includes(key)) throw new BadRequestError(`parts must not include ${key} itself`);
    deps.log.debug({ key, parts: req.parts.length }, 'blob compose started');
    const info = await composeBlob({ store: deps.store, log: deps.log }, key, req.parts, {
      expectedSha256: req.sha256,
      signal: c.req.raw.signal,
    });
    metrics.blobComposed(info.size);
    return c.json(
      { node: deps.id, key, size: info.size, sha256: info.sha256 } satisfies Composed,
      201,
    );
  });

  stagingRoutes(app, { ...deps, metrics }, chainDeps);

  app.get('/blobs/:key', async (c) => {
    const key = keyParam(c);
    // Hono routes HEAD here: answered from the file's metadata, never by reading the blob.
    // Checked on disk, not only in the keydir: the admin API's repair and the rebalance ask it.
    if (c.req.method === 'HEAD') {
      const info = await deps.store.statOnDisk(key);
      if (!info) return c.body(null, 404);
      return c.body(null, 200, blobHeaders(info, info.size));
    }
    const read = await deps.store
      .get(key, (size) => parseRange(c.req.header('range'), size))
      .catch((err) => {
        if (err instanceof CorruptBlobError)
          deps.log.error({ key, err: err.message }, 'corrupt blob quarantined');
        throw err;
      });
    if (!read) throw new NotFoundError(`no blob ${key}`, 'NO_SUCH_BLOB');
    const { info, range } = read;
    const length = range ? range.end - range.start + 1 : info.size;
    const headers = blobHeaders(info, length);
    if (range) headers['content-range'] = contentRange(range, info.size);
    if (read.verifiedBeforeSend) headers[H.verified] = 'before-send';
    const out = c.env.outgoing;
    out.writeHead(range ? 206 : 200, headers);
    if (read.data) {
      out.end(read.data); // small blob, already verified: headers and body in one write
      metrics.blobRead(read.data.length);
      return RESPONSE_ALREADY_SENT;
    }
    const sent = pipeChain(read.stream, out);
    // Added once piped, so this listener does not start the flow early.
    read.stream.on('data', (chunk: Buffer) => metrics.blobRead(chunk.length));
    sent.catch((err: Error) => {
      // The response is already under way: the only honest signal left is a truncated body.
      if ((err as { code?: string }).code === 'CHECKSUM_MISMATCH') {
        deps.log.error({ key, err: err.message }, 'corrupt blob quarantined');
      }
    });
    return RESPONSE_ALREADY_SENT;
  });

  app.delete('/blobs/:key', async (c) => {
    const key = keyParam(c);
    if (!(await deps.store.delete(key))) throw new NotFoundError(`no blob ${key}`, 'NO_SUCH_BLOB');
    return c.body(null, 204);
  });

  return app;
}

function blobHeaders(info: BlobInfo, length: number): Record<string, string> {
  return {
    'content-type': 'application/octet-stream',
    'content-length': String(length),
    'accept-ranges': 'bytes',
    etag: `"${info.sha256}"`,
    [H.sha256]: info.sha256,
  };
}

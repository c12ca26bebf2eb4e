/**
 * The gateway's public HTTP API (see docs/api.md). Routes only parse and
 * answer; the work lives in upload.ts, download.ts and the modules they use.
 */
import type { HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import type { GatewayConfig } from '../../shared/config.js';
import { errorHandler, notFoundHandler } from '../../shared/http.js';
import type { Logger } from '../../shared/logger.js';
import { requestLog } from '../../shared/request-log.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import type { GatewayNodeClient } from '../../shared/node-client.js';
import type { JobPublisher } from '../../shared/amqp.js';
import type { Redis } from 'ioredis';
import { handleDelete } from '../files/deletion.js';
import { handleFileInfo } from '../files/file-info.js';
import { handleClusterStatus, handleReady } from '../cluster/cluster-status.js';
import type { DownloadGrants } from '../download/download-counter.js';
import { handleDownload, handleThumbnail } from '../download/download.js';
import type { NodeStates } from '../cluster/node-registry.js';
import type { Replication } from '../cluster/replicator.js';
import { handleMultipartUpload, handleRawUpload } from '../upload/upload.js';
import { handleProcess, type ProcessingParts } from '../processing/process.js';
import { requireUploadAuth, requireUploadToken } from '../upload/upload-auth.js';
import { mountAdmin } from './admin.js';
import { UploadLinks, handleUploadLinkPage } from '../upload/upload-links.js';
import { handleSharePage, sharePageRefusals } from '../download/share-page.js';
import { loadAssets, serveAsset } from './static-files.js';
import { addApiDocs } from './api-docs.js';
import { RateLimits } from './rate-limit.js';
import { GatewayMetrics, requireMetricsToken } from '../metrics.js';
import { httpMetricsMiddleware, metricsHandler } from '../../shared/metrics.js';
import type { RepairQueue } from '../../shared/repair-queue.js';
import type { MemoryBudget } from '../../shared/memory-budget.js';
import type { BlobCache } from '../download/blob-cache.js';
import type { ResumeGrants } from '../download/resume-grants.js';
import type { AccessKeys } from '../s3/access-keys.js';
import type { LayoutView } from '../../shared/layout-watcher.js';
import type { Locker } from '@tus/utils';
import { TUS_PATH, mountResumable } from '../resumable/tus-routes.js';

/**
 * The services gateway/run.ts builds and starts. The registry, replicator,
 * counter and job queue are typed by what the handlers call of them, so the
 * app can be built in-process on fakes.
 */
export interface GatewayParts {
  store: MetadataStore;
  client: GatewayNodeClient;
  registry: NodeStates;
  /** The cluster layout in force, following the metadata store's newest version. */
  layout: LayoutView;
  replicator: Replication;
  counter: DownloadGrants;
  redis: Redis;
  amqp: JobPublisher;
  log: Logger;
  /** This gateway's spool directory (see upload-spool.ts). */
  spoolDir: string;
  /** The lock of resumable uploads, shared by every gateway (redis-locker.ts); one gateway alone when unset. */
  tusLocker?: Locker;
}

/**
 * What createApp hands its handlers: the configuration as loaded (its common
 * settings and its sections, `uploads`, `limits`, …: each handler's deps
 * interface names the sections it reads), the running parts, and what
 * gateway/deps.ts derives from both.
 */
export type GatewayDeps = GatewayConfig &
  GatewayParts &
  ProcessingParts & {
    /** Repairs asked for by uploads short of copies and by reads that found a replica gone. */
    repairs: RepairQueue;
    /** uploadLinkKey(cluster secret): signs and checks upload links, the same on every gateway. */
    uploadLinkKey: Buffer;
    /** The upload spool's bytes kept in memory, across every upload (upload-spool.ts). */
    spoolMemory: MemoryBudget;
    /** Small blobs already read and verified, served without a node hop (blob-cache.ts). */
    blobCache: BlobCache;
    /** Grants to resume a counted download without counting again (resume-grants.ts). */
    resumeGrants: ResumeGrants;
    /** The S3 API's access keys, their secrets sealed under the cluster secret (gateway/s3/access-keys.ts). */
    accessKeys: AccessKeys;
    /** Prometheus metrics; createApp makes them when not given. */
    metrics?: GatewayMetrics;
  };

/**
 * A module loaded on its first request rather than at start-up: what only a
 * few routes use (archiver for /batch, the QR encoder for /qr) stays out of
 * the resident memory of a gateway that never serves them.
 */
function onFirstUse<T>(load: () => Promise<T>): () => Promise<T> {
  let module: Promise<T> | undefined;
  return () => (module ??= load());
}

const batchModule = onFirstUse(() => import('../processing/batch.js'));
const qrModule = onFirstUse(() => import('./qr.js'));

export function createApp(deps: GatewayDeps) {
  // The upload and download paths count bytes and outcomes through deps.metrics.
  const metrics = deps.metrics ?? new GatewayMetrics(deps);
  deps = { ...deps, metrics };
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);
  // First: everything after it runs under the request's id (X-Request-Id).
  app.use('*', requestLog(deps.log, { quietPaths: ['/health', '/ready', '/metrics'] }));
  app.use('*', httpMetricsMiddleware(metrics.http));

  app.get('/health', (c) => c.json({ status: 'ok' }));
  // Prometheus (docs/metrics.md); open unless METRICS_TOKEN is set.
  app.get(
    '/metrics',
    requireMetricsToken(deps.auth.metricsToken),
    metricsHandler(metrics.registry),
  );

  app.get('/ready', (c) => handleReady(deps, c));

  // Before the body is read: without the token, not a byte reaches the spool or sharp.
  const auth = requireUploadToken(deps.auth.uploadToken);
  const links = new UploadLinks({
    key: deps.uploadLinkKey,
    redis: deps.redis,
    store: deps.store,
    clusterName: deps.clusterName,
    log: deps.log,
  });
  // Uploads also take a signed upload link (?link=) in the token's place; /process and /batch do not.
  const uploadAuth = requireUploadAuth(deps.auth.uploadToken, links);
  // Rate limits first: a client guessing the token is held to them too.
  const limits = new RateLimits({
    redis: deps.redis,
    log: deps.log,
    clusterName: deps.clusterName,
    trustProxy: deps.urls.trustProxy,
    config: deps.rateLimits,
  });
  for (const path of ['/upload', '/upload/*'])
    app.on(['POST', 'PUT'], path, limits.uploads, uploadAuth);
  for (const path of ['/process', '/batch']) app.on(['POST', 'PUT'], path, limits.uploads, auth);
  // GET routes take HEAD too. The share page answers its refusals as HTML.
  app.get('/s/:id', sharePageRefusals);
  for (const path of ['/download/:id', '/s/:id', '/files/:id/thumbnail'])
    app.get(path, limits.downloads);

  // Resumable uploads (tus): creation is an upload like the others; the upload's URL then is its key.
  mountResumable(app, deps, {
    locker: deps.tusLocker,
    creation: [
      limits.uploads,
      requireUploadAuth(deps.auth.uploadToken, links, { giveBack: false }),
    ],
  });

  app.post('/upload', (c) => handleMultipartUpload(deps, c));
  app.put('/upload/:filename', (c) => handleRawUpload(deps, c));
  app.put('/upload', (c) => handleRawUpload(deps, c));

  // Processed images answered directly, nothing stored.
  app.post('/process', (c) => handleProcess(deps, c));
  app.post('/batch', async (c) => (await batchModule()).handleBatch(deps, c));

  // Hono dispatches HEAD to the GET route; the handler tells them apart (HEAD consumes nothing).
  app.get('/download/:id', (c) => handleDownload(deps, c, c.req.method === 'HEAD'));

  app.delete('/files/:id', (c) => handleDelete(deps, c));
  app.get('/files/:id', (c) => handleFileInfo(deps, c));
  // Like /download, HEAD comes here too; a thumbnail never counts as a download.
  app.get('/files/:id/thumbnail', (c) => handleThumbnail(deps, c, c.req.method === 'HEAD'));

  app.get('/api/cluster', (c) => handleClusterStatus(deps, c));

  // Every /admin route, behind ADMIN_TOKEN (admin.ts).
  mountAdmin(app, { ...deps, links });
  addPages(app, deps, links);
  // GET /openapi.json and the /docs page that shows it (api-docs.ts).
  addApiDocs(app, deps);
  return app;
}

/** The browser page (/), its static files, the share page (/s/:id), QR codes and what the page needs to know. */
function addPages(
  app: Hono<{ Bindings: HttpBindings }>,
  deps: GatewayDeps,
  links: UploadLinks,
): void {
  const assets = loadAssets();
  app.get('/', (c) => serveAsset(c, assets, 'index.html'));
  app.get('/static/:name', (c) => serveAsset(c, assets, c.req.param('name')));
  app.get('/s/:id', (c) => handleSharePage(deps, c));
  // The upload page in link mode: uploads go through the signed link in its URL.
  app.get('/u/:token', (c) =>
    handleUploadLinkPage(links, c, () => serveAsset(c, assets, 'index.html')),
  );
  app.get('/qr', async (c) => (await qrModule()).handleQr(c));
  app.get('/api/config', (c) =>
    c.json({
      upload_token_required: deps.auth.uploadToken !== undefined,
      max_upload_bytes: deps.uploads.maxUploadBytes,
      max_files_per_upload: deps.uploads.maxFilesPerUpload,
      default_max_downloads: deps.limits.defaultMaxDownloads,
      max_downloads_limit: deps.limits.maxDownloadsLimit,
      default_ttl_seconds: deps.limits.defaultTtlSeconds,
      max_ttl_seconds: deps.limits.maxTtlSeconds,
      resumable_path: TUS_PATH,
      resumable_threshold_bytes: deps.resumable.resumableThresholdBytes,
      resumable_chunk_bytes: deps.resumable.resumableChunkBytes,
    }),
  );
}

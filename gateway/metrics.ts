/**
 * The gateway's metrics (docs/metrics.md): what it streams in and out, the
 * uploads and downloads it answers, the downloads it refuses, and, read at
 * scrape time, the nodes' states and the objects short of a copy.
 *
 * The upload and download paths get this object through their deps and only
 * call its small methods; GET /metrics (gateway/http/app.ts) serves `registry`.
 */
import type { Redis } from 'ioredis';
import type { LayoutView } from '../shared/layout-watcher.js';
import { readProgress } from '../shared/rebalance-progress.js';
import type { MiddlewareHandler } from 'hono';
import { Counter, Gauge, type Registry } from 'prom-client';
import { TroveError, isDisconnect } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { GatewayConfig } from '../shared/config.js';
import type { MetadataStore } from '../shared/metadata-store.js';
import {
  createHttpMetrics,
  createRegistry,
  METRIC_PREFIX as P,
  type HttpMetrics,
} from '../shared/metrics.js';
import type { NodeStates, NodeStatus } from './cluster/node-registry.js';
import { S3Metrics } from './s3/s3-metrics.js';
import { requireBearer } from './http/bearer-auth.js';
import type { BlobCache } from './download/blob-cache.js';
import type { GrantHolder } from './download/resume-grants.js';

const NODE_STATES: readonly NodeStatus[] = ['online', 'suspect', 'offline'];

/** How a failed upload request ended. */
export type UploadOutcome = 'rejected' | 'failed' | 'aborted';

export interface GatewayMetricsDeps {
  store: MetadataStore;
  registry: NodeStates;
  /** REPLICATION_FACTOR: a file with fewer healthy copies is under-replicated. */
  replication: GatewayConfig['replication'];
  /** Read at scrape time: hits, misses and bytes of the cache of small blobs. */
  blobCache?: Pick<BlobCache, 'stats'>;
  /** The layout in force and, through Redis, the rebalance's progress (optional: unit tests). */
  layout?: LayoutView;
  redis?: Redis;
  clusterName?: string;
  log: Logger;
}

export class GatewayMetrics {
  readonly registry: Registry = createRegistry();
  readonly http: HttpMetrics = createHttpMetrics(this.registry);
  /** The S3 port's requests and bytes (its app counts them; present, at 0, with the port off). */
  readonly s3: S3Metrics = new S3Metrics(this.registry);

  private readonly uploadBytes = new Counter({
    name: `${P}upload_bytes_total`,
    help: 'Bytes of uploaded files read from clients, counted as they stream in (multipart framing excluded)',
    registers: [this.registry],
  });
  private readonly downloadBytes = new Counter({
    name: `${P}download_bytes_total`,
    help: 'Bytes of blobs sent to clients (downloads, compressed copies, thumbnails), counted as they stream out',
    registers: [this.registry],
  });
  private readonly uploads = new Counter({
    name: `${P}uploads_total`,
    help: 'Upload requests by outcome: stored (every file committed), rejected (4xx), failed (5xx), aborted (the client left)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  private readonly uploadedFiles = new Counter({
    name: `${P}uploaded_files_total`,
    help: 'Files stored by uploads (a multipart request may store several)',
    registers: [this.registry],
  });
  private readonly downloads = new Counter({
    name: `${P}downloads_total`,
    help: 'Blob reads that started sending bytes, by blob (original, compressed, thumb)',
    labelNames: ['blob'],
    registers: [this.registry],
  });
  private readonly downloadResumes = new Counter({
    name: `${P}download_resumes_total`,
    help: 'Resumes of a counted download served without counting, by how the client held its grant (address: curl -C -; cookie: a browser)',
    labelNames: ['grant'],
    registers: [this.registry],
  });
  private readonly downloadRejections = new Counter({
    name: `${P}download_rejections_total`,
    help: 'GET/HEAD /download/:id refused before any byte, by error code (410 FILE_EXPIRED, FILE_DELETED, DOWNLOAD_LIMIT_REACHED; 404 FILE_NOT_FOUND, …)',
    labelNames: ['code', 'status'],
    registers: [this.registry],
  });

  constructor(deps: GatewayMetricsDeps) {
    // Known label values start at 0, so rate() and alerts see them before the first event.
    for (const outcome of ['stored', 'rejected', 'failed', 'aborted'])
      this.uploads.inc({ outcome }, 0);
    for (const blob of ['original', 'compressed', 'thumb']) this.downloads.inc({ blob }, 0);
    for (const grant of ['address', 'cookie']) this.downloadResumes.inc({ grant }, 0);
    const counts = shared(() => deps.store.counts(deps.replication.replicationFactor));
    const cache = deps.blobCache;
    if (cache) {
      const seen = { hit: 0, miss: 0 };
      new Counter({
        name: `${P}download_cache_lookups_total`,
        help: 'Lookups of blobs small enough for the cache of verified blobs, by result (hit: served without a node hop; miss: read from a node)',
        labelNames: ['result'],
        registers: [this.registry],
        collect() {
          // The cache counts; a scrape adds what it counted since the last one.
          const { hits, misses } = cache.stats();
          this.inc({ result: 'hit' }, hits - seen.hit);
          this.inc({ result: 'miss' }, misses - seen.miss);
          Object.assign(seen, { hit: hits, miss: misses });
        },
      });
      new Gauge({
        name: `${P}download_cache_bytes`,
        help: 'Bytes of blobs held in the cache of small verified blobs (at most DOWNLOAD_CACHE_BYTES)',
        registers: [this.registry],
        collect() {
          this.set(cache.stats().bytes);
        },
      });
    }
    new Gauge({
      name: `${P}node_state`,
      help: "1 for each storage node's current state as this gateway sees it (online, suspect, offline), 0 for the others",
      labelNames: ['node', 'state'],
      registers: [this.registry],
      collect() {
        for (const node of deps.registry.all())
          for (const state of NODE_STATES)
            this.set({ node: node.id, state }, node.status === state ? 1 : 0);
      },
    });
    const { layout, redis, clusterName } = deps;
    if (layout)
      new Gauge({
        name: `${P}layout_version`,
        help: 'The cluster layout version this gateway works with (every gateway should show the same within LAYOUT_POLL_MS)',
        registers: [this.registry],
        collect() {
          this.set(layout.current().version);
        },
      });
    if (redis && clusterName)
      new Gauge({
        name: `${P}rebalance_files`,
        help: 'The newest rebalance pass: files to check (total), checked so far (scanned), and left for a later pass (left), at scrape time',
        labelNames: ['what'],
        registers: [this.registry],
        async collect() {
          const p = await readProgress(redis, clusterName).catch(() => undefined);
          this.reset();
          if (p)
            for (const what of ['total', 'scanned', 'left'] as const) this.set({ what }, p[what]);
        },
      });
    new Gauge({
      name: `${P}objects`,
      help: 'Live files (committed, not deleted), from the metadata store at scrape time',
      registers: [this.registry],
      async collect() {
        const c = await counts().catch(() => undefined);
        if (c) this.set(c.objects);
        else this.reset();
      },
    });
    new Gauge({
      name: `${P}objects_under_replicated`,
      help: 'Live files with fewer healthy copies of their original than the replication factor (replicas missing), at scrape time',
      registers: [this.registry],
      async collect() {
        const c = await counts().catch((err: Error) => {
          deps.log.warn({ err: err.message }, 'metrics: could not count objects');
          return undefined;
        });
        if (c) this.set(c.underReplicated);
        else this.reset();
      },
    });
  }

  /** A chunk of an uploaded file has been read. */
  uploadRead(bytes: number): void {
    this.uploadBytes.inc(bytes);
  }

  /** A chunk of a blob has gone to a client. */
  downloadSent(bytes: number): void {
    this.downloadBytes.inc(bytes);
  }

  uploadStored(files: number): void {
    this.uploads.inc({ outcome: 'stored' });
    this.uploadedFiles.inc(files);
  }

  /** An upload request that stored nothing, classified by what it threw. */
  uploadFailed(err: unknown): void {
    this.uploads.inc({ outcome: uploadOutcome(err) });
  }

  /** A read of blob `key` started sending bytes. */
  downloadStarted(key: string): void {
    this.downloads.inc({ blob: key.split('.')[1] ?? 'original' });
  }

  /** A resume served without counting, its client's grant found by `grant` (resume-grants.ts). */
  downloadResumed(grant: GrantHolder): void {
    this.downloadResumes.inc({ grant });
  }

  /** A download refused with a client error (404, 410, …); anything else is not a refusal. */
  downloadRefused(err: unknown): void {
    if (err instanceof TroveError && err.status >= 400 && err.status < 500)
      this.downloadRejections.inc({ code: err.code, status: String(err.status) });
  }
}

export function uploadOutcome(err: unknown): UploadOutcome {
  if (isDisconnect(err)) return 'aborted';
  if (err instanceof TroveError && err.status < 500) return 'rejected';
  return 'failed';
}

/**
 * `fetch()` shared by the calls made while it runs: the two object gauges
 * read the same counts in one scrape (prom-client collects them in
 * parallel), and the next scrape reads afresh.
 */
function shared<T>(fetch: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => (pending ??= fetch().finally(() => (pending = undefined)));
}

/** METRICS_TOKEN: when set, GET /metrics needs `Authorization: Bearer <token>`; open otherwise. */
export function requireMetricsToken(token: string | undefined): MiddlewareHandler {
  return requireBearer(
    token,
    'trove metrics',
    'metrics on this server need a token: Authorization: Bearer <METRICS_TOKEN>',
  );
}

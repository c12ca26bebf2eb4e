/**
 * The gateway app built in the test's own process, for the fast tests of its
 * HTTP rules beside the code (the gateway's `*.app.test.ts`, in the `unit`
 * project): the real createApp, handlers and rules, and the real SQLite
 * metadata store (in a temp dir), over fakes of what crosses processes
 * (test/gateway-fakes.ts). No service needs to run.
 *
 * Why a listening server rather than `app.request()`: the upload and download
 * handlers stream through Node's own request and response (`c.env.incoming`,
 * `c.env.outgoing`, @hono/node-server's HttpBindings), which `app.request()`
 * does not provide. So the app is served as gateway/run.ts serves it
 * (shared/http.ts `listen`), on a free loopback port, and `request()` takes
 * what `app.request()` takes. Loopback clients are never rate limited.
 *
 * What only shows across processes (chain replication, the registry's probes,
 * Redis counters shared by gateways, crashes) stays in the multi-process
 * tests of test/.
 */
import { seedLayout } from '../shared/layout.js';
import { fixedLayout } from '../shared/layout-watcher.js';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect } from 'vitest';
import { loadGatewayConfig, type Env, type GatewayConfig } from '../shared/config.js';
import { close, listen } from '../shared/http.js';
import { blobKey } from '../shared/keys.js';
import { createLogger } from '../shared/logger.js';
import type { Redis } from 'ioredis';
import type { VariantName } from '../shared/metadata-store.js';
import { SqliteMetadataStore, openDatabase } from '../shared/sqlite-metadata-store.js';
import { gatewayDeps } from '../gateway/deps.js';
import type { BlobCache } from '../gateway/download/blob-cache.js';
import { createApp } from '../gateway/http/app.js';
import {
  FakeCounter,
  FakeJobs,
  FakeNodes,
  FakeRegistry,
  FakeReplicator,
  fakeRedis,
  sha256,
} from './gateway-fakes.js';

export { sha256 };

/** A real JPEG (11535 bytes) and a real PNG: uploads are sniffed by their magic bytes. */
export const PHOTO = readFileSync(new URL('./fixtures/photo.jpg', import.meta.url));
export const PNG = readFileSync(new URL('./fixtures/alpha.png', import.meta.url));

/** The JSON of a 201 upload answer (one file). */
export interface UploadAnswer {
  id: string;
  name: string;
  size: number;
  content_type: string;
  sha256: string;
  status: string;
  max_downloads: number;
  downloads_used: number;
  downloads_left: number | null;
  expires_at: string;
  url: string;
  share_url: string;
  delete_token: string;
  replicas: { node: string; state: string }[];
  processing: { state: string };
}

export interface InProcessGateway {
  /** What `app.request()` takes (a path, fetch's init); the answer. */
  request(path: string, init?: RequestInit): Promise<Response>;
  /** Where the app listens: http://127.0.0.1:<port>. */
  url: string;
  config: GatewayConfig;
  store: SqliteMetadataStore;
  nodes: FakeNodes;
  registry: FakeRegistry;
  replicator: FakeReplicator;
  counter: FakeCounter;
  /** The gateway's Redis: a map of keys (test/gateway-fakes.ts). */
  redis: Redis;
  jobs: FakeJobs;
  spoolDir: string;
  /** The gateway's cache of small verified blobs (gateway/download/blob-cache.ts). */
  blobCache: BlobCache;
  /** PUT /upload/<name> (`photo.jpg` by default) with `query`; the 201's JSON (throws on any other answer). */
  upload(bytes?: Buffer, o?: { name?: string; query?: string }): Promise<UploadAnswer>;
  /** Records variant `variant` of file `id` with its bytes on every node, as the worker would. */
  addVariant(id: string, variant: VariantName, bytes: Buffer): Promise<void>;
  /** What the gateway keeps: file rows in any state, blobs on the nodes, files in its spool. */
  holdings(): Promise<{ files: number; blobs: number; spooled: number }>;
  close(): Promise<void>;
}

/**
 * `inProcessGateway`, each one closed after the test that made it: call at
 * the top of a test file, then `await gateway(env)` in each test.
 */
export function gatewaysPerTest(): (env?: Env) => Promise<InProcessGateway> {
  const open: InProcessGateway[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((gw) => gw.close()));
  });
  return async (env) => {
    const gw = await inProcessGateway(env);
    open.push(gw);
    return gw;
  };
}

/** Checks an error answer: its status, and its `{"error":{"code","message"}}` body with `code`. */
export async function expectError(res: Response, status: number, code: string): Promise<void> {
  expect({ status: res.status, body: await res.json() }).toEqual({
    status,
    body: { error: { code, message: expect.any(String) } },
  });
}

/** The gateway app on fakes, with `env` added to its configuration, listening on loopback. */
export async function inProcessGateway(env: Env = {}): Promise<InProcessGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'trove-app-'));
  const config = loadGatewayConfig({
    STORAGE_DIR: dir,
    CLUSTER_SECRET: 'in-process-gateway-test-secret',
    CLUSTER_NAME: 'apptest',
    ...env,
  });
  const spoolDir = join(dir, 'spool');
  mkdirSync(spoolDir);
  const store = new SqliteMetadataStore(openDatabase(config.dbPath));
  const nodes = new FakeNodes(config.nodes);
  const registry = new FakeRegistry(config.nodes);
  const replicator = new FakeReplicator(nodes, registry, config.nodes, config.replication);
  const counter = new FakeCounter(store);
  const jobs = new FakeJobs(config.clusterName);
  const redis = fakeRedis();
  const deps = gatewayDeps(config, {
    store,
    client: nodes,
    registry,
    layout: fixedLayout(seedLayout(config.nodes)),
    replicator,
    counter,
    redis,
    amqp: jobs,
    log: createLogger('in-process-gateway', 'silent'),
    spoolDir,
    secret: config.clusterSecret!,
  });
  const app = createApp(deps);
  const server = await listen(app, '127.0.0.1', 0);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const request = (path: string, init?: RequestInit) => fetch(new URL(path, url), init);

  return {
    request,
    url,
    config,
    store,
    nodes,
    registry,
    replicator,
    counter,
    redis,
    jobs,
    spoolDir,
    blobCache: deps.blobCache,
    async upload(bytes = PHOTO, o = {}) {
      const query = o.query ? `?${o.query}` : '';
      const res = await request(`/upload/${o.name ?? 'photo.jpg'}${query}`, {
        method: 'PUT',
        body: bytes,
      });
      if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
      return (await res.json()) as UploadAnswer;
    },
    async addVariant(id, variant, bytes) {
      const key = blobKey(id, variant);
      for (const blobs of nodes.blobs.values()) blobs.set(key, bytes);
      await store.recordVariants(
        id,
        [
          {
            variant,
            size: bytes.length,
            width: 256,
            height: 192,
            contentType: 'image/webp',
            sha256: sha256(bytes),
            createdAt: Date.now(),
          },
        ],
        config.nodes.map((n) => ({ key, node: n.id, state: 'ok' as const })),
      );
    },
    async holdings() {
      const files = await store.listFiles({ now: Date.now(), limit: 1000 });
      const blobs = [...nodes.blobs.values()].reduce((sum, b) => sum + b.size, 0);
      return { files: files.length, blobs, spooled: readdirSync(spoolDir).length };
    },
    async close() {
      await close(server, 1000);
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

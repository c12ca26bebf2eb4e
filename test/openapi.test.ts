/**
 * /openapi.json and /docs against a real cluster (with a worker, so image
 * variants exist): the document is OpenAPI 3.1 in shape; every route the
 * gateway app serves is in it; every example it documents, sent to the real
 * gateway, gets an answer the document lists (a success where it lists one),
 * whose JSON matches the documented schema; and /docs loads only the
 * gateway's own files, in Chromium too when it is installed.
 */
import { seedLayout } from '../shared/layout.js';
import { fixedLayout } from '../shared/layout-watcher.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectRoutes } from 'hono/dev';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { z } from 'zod';
import { AmqpClient } from '../shared/amqp.js';
import { loadGatewayConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { NodeClient } from '../shared/node-client.js';
import { closeRedis, createRedis, createRedlock } from '../shared/redis.js';
import { SqliteMetadataStore, openDatabase } from '../shared/sqlite-metadata-store.js';
import { createApp } from '../gateway/http/app.js';
import { DownloadCounter } from '../gateway/download/download-counter.js';
import { NodeRegistry } from '../gateway/cluster/node-registry.js';
import { Replicator } from '../gateway/cluster/replicator.js';
import { gatewayDeps } from '../gateway/deps.js';
import { fixture, startCluster, waitFor, type Cluster } from './harness.js';
import { findChromium, skipWithout } from './required-tools.js';

const CHROMIUM = findChromium();
// The /docs page in a real browser: skipped, saying why, without Chromium; a failure under TROVE_TEST_REQUIRE (CI).
const noChromium = skipWithout(
  'chromium',
  CHROMIUM,
  'apt-get install -y chromium, or set CHROMIUM_PATH',
);
const ADMIN_TOKEN = 'openapi-test-admin-token';
const METHODS = ['get', 'head', 'post', 'put', 'delete', 'patch', 'options'] as const;

/** Served, but not API: the /docs page's own script, stylesheet and icon. */
const NOT_API = new Set(['GET /docs/:asset']);

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  example?: unknown;
  schema?: { example?: unknown };
}
interface MediaType {
  schema?: unknown;
  example?: unknown;
}
interface Operation {
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { content: Record<string, MediaType> };
  responses: Record<string, { content?: Record<string, MediaType> }>;
}
interface Document {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>>;
  components: { schemas: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
}

let cluster: Cluster;
let doc: Document;

beforeAll(async () => {
  cluster = await startCluster({ worker: true, env: { ADMIN_TOKEN } });
  const res = await fetch(`${cluster.gatewayUrl}/openapi.json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Document;
});
afterAll(async () => {
  await cluster?.stop();
});

function showLogsOnFailure() {
  onTestFailed(() => console.log(cluster.logTail(60)));
}

/** Every operation of the document, as `METHOD /path` with the operation. */
function operations(): { key: string; path: string; method: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.flatMap((method) => {
      const op = item[method];
      return op ? [{ key: `${method.toUpperCase()} ${path}`, path, method, op }] : [];
    }),
  );
}

/** A schema with its #/components/schemas references replaced by what they point to. */
function inline(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(inline);
  if (schema === null || typeof schema !== 'object') return schema;
  const ref = (schema as { $ref?: string }).$ref;
  if (ref) {
    const name = ref.replace('#/components/schemas/', '');
    expect(doc.components.schemas, `${ref} resolves`).toHaveProperty(name);
    return inline(doc.components.schemas[name]);
  }
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, inline(v)]));
}

/**
 * The gateway app's routes, from `createApp` itself, built with real parts
 * the way gateway/run.ts builds them (nothing started: only its routing
 * table is read).
 */
async function servedRoutes(): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'trove-openapi-'));
  const config = loadGatewayConfig({
    STORAGE_DIR: dir,
    CLUSTER_SECRET: cluster.secret,
    NODES: cluster.nodes.map((n) => `${n.id}=${n.url}`).join(','),
    CLUSTER_NAME: cluster.clusterName,
  });
  const log = createLogger('openapi-test', 'silent');
  const store = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
  const client = new NodeClient({ secret: cluster.secret, timeoutMs: 1000 });
  const redis = createRedis(config.redisConnection, log);
  const amqp = new AmqpClient({
    urls: config.amqpUrls,
    prefix: config.clusterName,
    queueType: config.amqpQueueType,
    connectionName: 'openapi-test',
    log,
  });
  const registry = new NodeRegistry(config.nodes, client, {
    redis,
    prefix: config.clusterName,
    schedule: config.storageNodes.probeSchedule,
    offlineAfter: config.storageNodes.offlineAfterFailures,
    log,
  });
  try {
    const app = createApp(
      gatewayDeps(config, {
        store,
        client,
        registry,
        layout: fixedLayout(seedLayout(config.nodes)),
        replicator: new Replicator({
          client,
          registry,
          layout: fixedLayout(seedLayout(config.nodes)),
          copies: config.replication.replicationFactor,
          quorum: config.replication.writeQuorum,
          offlineGraceMs: config.storageNodes.nodeTimeoutMs,
        }),
        counter: new DownloadCounter({ redlock: createRedlock(redis), store, log }),
        redis,
        amqp,
        log,
        spoolDir: join(dir, 'spool'),
        secret: cluster.secret,
      }),
    );
    // Middleware (the token checks, rate limits, logging) is not a route of its own.
    const routes = inspectRoutes(app).filter((r) => !r.isMiddleware);
    return [...new Set(routes.map((r) => `${r.method} ${r.path}`))];
  } finally {
    closeRedis(redis);
    await client.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Real values for the parameters an example cannot know. */
interface Real {
  id: string;
  token: string;
  link: string;
  /** A resumable upload of the sample photo. */
  upload: string;
  /** An active S3 access key. */
  accessKey: string;
}

/** A resumable upload as long as the sample photo; its id (the last part of its URL). With `finish`, the photo sent whole. */
async function createResumable(finish = false): Promise<string> {
  const photo = fixture('photo.jpg');
  const res = await fetch(`${cluster.gatewayUrl}/tus/`, {
    method: 'POST',
    headers: { 'tus-resumable': '1.0.0', 'upload-length': String(photo.length) },
  });
  expect(res.status).toBe(201);
  const url = res.headers.get('location')!;
  if (finish) {
    const sent = await fetch(url, {
      method: 'PATCH',
      headers: {
        'tus-resumable': '1.0.0',
        'upload-offset': '0',
        'content-type': 'application/offset+octet-stream',
      },
      body: photo,
    });
    expect(sent.status).toBe(204);
  }
  return url.split('/').pop()!;
}

/** A new S3 access key's id, made through the admin API. */
async function createAccessKey(): Promise<string> {
  const res = await fetch(`${cluster.gatewayUrl}/admin/s3/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { access_key_id: string }).access_key_id;
}

/**
 * Bucket `name`, written straight into the gateway's store: buckets are made
 * through the S3 API, which this test does not speak; the admin routes only
 * read and set their defaults.
 */
async function createBucket(name: string, owner: string): Promise<void> {
  const store = new SqliteMetadataStore(openDatabase(cluster.dbPath));
  try {
    expect(await store.s3.createBucket({ name, owner, createdAt: Date.now() })).toBe('created');
  } finally {
    await store.close();
  }
}

/** A signed upload link's token, minted through the admin API. */
async function mintLink(): Promise<string> {
  const res = await fetch(`${cluster.gatewayUrl}/admin/upload-links`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ expires_in: 600, max_files: 10 }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { token: string }).token;
}

/** Uploads the sample photo; its id and delete token once the worker has made its variants. */
async function uploadProcessed(): Promise<{ id: string; token: string }> {
  const form = new FormData();
  form.append('file', new Blob([fixture('photo.jpg')], { type: 'image/jpeg' }), 'photo.jpg');
  const res = await fetch(`${cluster.gatewayUrl}/upload?max_downloads=0`, {
    method: 'POST',
    body: form,
  });
  expect(res.status).toBe(201);
  const file = (await res.json()) as { id: string; delete_token: string };
  await waitFor('variants made', async () => {
    const view = (await (await fetch(`${cluster.gatewayUrl}/files/${file.id}`)).json()) as {
      processing: { state: string };
    };
    return view.processing.state === 'done';
  });
  return { id: file.id, token: file.delete_token };
}

const exampleOf = (p: Parameter) => p.example ?? p.schema?.example;

/** The documented example request of an operation, with a real file where one is needed. */
function exampleRequest(
  path: string,
  method: string,
  op: Operation,
  given: Real,
): { url: string; init: RequestInit } {
  const real: Record<string, string> = {
    'path id': given.id,
    'query delete_token': given.token,
    'header x-delete-token': given.token,
    'path token': given.link,
    'path upload_id': given.upload,
    'path access_key_id': given.accessKey,
    // The resumable upload gets the photo whole, from its start.
    'header upload-offset': '0',
    'header upload-length': String(fixture('photo.jpg').length),
  };
  let urlPath = path;
  const query = new URLSearchParams();
  const headers: Record<string, string> = {};
  for (const p of op.parameters ?? []) {
    const value = real[`${p.in} ${p.name}`] ?? exampleOf(p);
    // Uploads through a link are an option: the examples upload without one.
    if (p.in === 'query' && p.name === 'link') continue;
    if (value === undefined) {
      expect(p.required, `${method} ${path}: required ${p.name} has an example`).not.toBe(true);
      continue;
    }
    if (p.in === 'path')
      urlPath = urlPath.replace(`{${p.name}}`, encodeURIComponent(String(value)));
    else if (p.in === 'query') query.set(p.name, String(value));
    else headers[p.name] = String(value);
  }
  const init: RequestInit = { method: method.toUpperCase(), headers };
  const body = op.requestBody?.content;
  if (body?.['multipart/form-data']) {
    const form = new FormData();
    form.append('file', new Blob([fixture('photo.jpg')], { type: 'image/jpeg' }), 'photo.jpg');
    init.body = form;
  } else if (body?.['application/octet-stream']) {
    init.body = fixture('photo.jpg');
  } else if (body?.['application/offset+octet-stream']) {
    init.body = fixture('photo.jpg');
    headers['content-type'] = 'application/offset+octet-stream';
  } else if (body?.['application/json']) {
    init.body = JSON.stringify(jsonExample(body['application/json']));
    headers['content-type'] = 'application/json';
  }
  if (op.security?.some((s) => 'adminToken' in s)) headers.authorization = `Bearer ${ADMIN_TOKEN}`;
  const qs = query.toString();
  return { url: `${cluster.gatewayUrl}${urlPath}${qs ? `?${qs}` : ''}`, init };
}

/** A JSON body's example: the one given, else an object of its properties' examples. */
function jsonExample(media: MediaType): unknown {
  if (media.example !== undefined) return media.example;
  const schema = inline(media.schema) as { properties?: Record<string, { example?: unknown }> };
  return Object.fromEntries(
    Object.entries(schema.properties ?? {}).flatMap(([k, v]) =>
      v.example === undefined ? [] : [[k, v.example]],
    ),
  );
}

/** Whether a Content-Type answers a documented media type (wildcards such as image/any included). */
function matchesType(contentType: string, documented: string[]): boolean {
  const essence = contentType.split(';')[0]!.trim().toLowerCase();
  return documented.some(
    (t) => t === '*/*' || t === essence || (t.endsWith('/*') && essence.startsWith(t.slice(0, -1))),
  );
}

describe('OpenAPI document', () => {
  it('is OpenAPI 3.1 in shape, every reference resolving', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toBe('Trove');
    expect(Object.keys(doc.paths).length).toBeGreaterThan(10);
    expect(doc.components.schemas).toHaveProperty('File');
    expect(doc.components.schemas).toHaveProperty('Error');
    expect(doc.components.securitySchemes).toHaveProperty('uploadToken');
    for (const { key, op } of operations()) {
      expect(Object.keys(op.responses).length, `${key} has responses`).toBeGreaterThan(0);
      for (const status of Object.keys(op.responses)) expect(status, key).toMatch(/^[1-5]\d\d$/);
      inline(op); // throws on a reference to a missing component
    }
  });

  it('documents every route the gateway serves', async () => {
    const documented = new Set(
      operations().map(
        ({ method, path }) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`,
      ),
    );
    const served = await servedRoutes();
    // A sanity check of the walk itself: it sees the routes everyone knows.
    expect(served).toEqual(
      expect.arrayContaining(['POST /upload', 'GET /download/:id', 'GET /docs']),
    );
    const missing = served.filter((r) => !documented.has(r) && !NOT_API.has(r));
    expect(missing).toEqual([]);
  });

  it('accepts every documented example, answering as documented', async () => {
    showLogsOnFailure();
    // Downloads need a file with its variants (?variant=compressed); deleting needs one of its own.
    const shared = {
      ...(await uploadProcessed()),
      link: await mintLink(),
      // Finished: HEAD and GET answer it whole. PATCH and DELETE get a fresh one each.
      upload: await createResumable(true),
      accessKey: await createAccessKey(),
    };
    // The bucket of the examples (BUCKET_PARAMS), owned by the shared key.
    await createBucket('photos', shared.accessKey);
    const checked: string[] = [];
    for (const { key, path, method, op } of operations()) {
      const file =
        method === 'delete'
          ? {
              ...shared,
              ...(await uploadProcessed()),
              upload: await createResumable(),
              accessKey: await createAccessKey(),
            }
          : method === 'patch'
            ? { ...shared, upload: await createResumable() }
            : shared;
      const { url, init } = exampleRequest(path, method, op, file);
      const res = await fetch(url, init);
      const listed = Object.keys(op.responses);
      const successes = listed.filter((s) => Number(s) < 400);
      // An operation that can succeed must succeed with its example; PUT /upload (always refused) answers as listed.
      expect(successes.length > 0 ? successes : listed, `${key}: ${url}`).toContain(
        String(res.status),
      );
      const content = op.responses[String(res.status)]?.content;
      const contentType = res.headers.get('content-type') ?? '';
      if (content && res.status !== 304) {
        expect(matchesType(contentType, Object.keys(content)), `${key}: ${contentType}`).toBe(true);
      }
      const jsonSchema = content?.['application/json']?.schema;
      if (jsonSchema && method !== 'head') {
        const body: unknown = await res.json();
        const result = z.fromJSONSchema(inline(jsonSchema) as never).safeParse(body);
        expect(result.error?.issues ?? [], `${key}: the body matches its schema`).toEqual([]);
      } else {
        await res.arrayBuffer();
      }
      checked.push(`${key} ${res.status}`);
    }
    // The examples that show the API at work did what they say.
    expect(checked).toEqual(
      expect.arrayContaining([
        'POST /upload 201',
        'PUT /upload/{filename} 201',
        'POST /process 200',
        'POST /batch 200',
        'GET /download/{id} 206',
        'DELETE /files/{id} 204',
        'DELETE /admin/files/{id} 204',
        'POST /admin/upload-links 201',
        'GET /u/{token} 200',
        'POST /tus/ 201',
        'PATCH /tus/{upload_id} 204',
        'GET /tus/{upload_id} 200',
        'DELETE /tus/{upload_id} 204',
        'POST /admin/s3/keys 201',
        'DELETE /admin/s3/keys/{access_key_id} 204',
        'PUT /admin/s3/buckets/{bucket}/defaults 200',
      ]),
    );
  });
});

describe('/docs', () => {
  it('is an HTML page whose every asset is local, served 200 with a cache header', async () => {
    const res = await fetch(`${cluster.gatewayUrl}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/https?:|\*/);
    const html = await res.text();
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThanOrEqual(3);
    for (const url of urls) {
      expect(url, 'a path on this gateway').toMatch(/^\/docs\//);
      const asset = await fetch(`${cluster.gatewayUrl}${url}`);
      expect(asset.status, url).toBe(200);
      expect(asset.headers.get('cache-control'), url).toMatch(/max-age=\d+/);
      const etag = asset.headers.get('etag')!;
      await asset.arrayBuffer();
      const again = await fetch(`${cluster.gatewayUrl}${url}`, {
        headers: { 'if-none-match': etag },
      });
      expect(again.status, url).toBe(304);
    }
    expect((await fetch(`${cluster.gatewayUrl}/docs/nothing.js`)).status).toBe(404);
  });

  it.skipIf(noChromium)(
    'renders every operation in Chromium with nothing fetched from elsewhere',
    async () => {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      });
      try {
        const page = await browser.newPage();
        const elsewhere: string[] = [];
        const refused: string[] = [];
        await page.route('**/*', (route) => {
          const url = route.request().url();
          if (url.startsWith(cluster.gatewayUrl) || url.startsWith('data:'))
            return route.continue();
          elsewhere.push(url);
          return route.abort();
        });
        page.on('console', (m) => {
          if (m.type() === 'error') refused.push(m.text());
        });
        await page.goto(`${cluster.gatewayUrl}/docs`);
        const count = operations().length;
        await expect.poll(() => page.locator('.opblock').count(), { timeout: 20_000 }).toBe(count);
        expect(elsewhere).toEqual([]);
        expect(refused).toEqual([]);
      } finally {
        await browser.close();
      }
    },
  );
});

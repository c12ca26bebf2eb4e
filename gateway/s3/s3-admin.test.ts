import type { HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorHandler } from '../../shared/http.js';
import { createLogger } from '../../shared/logger.js';
import { SqliteMetadataStore, openDatabase } from '../../shared/sqlite-metadata-store.js';
import { AccessKeys } from './access-keys.js';
import { s3AdminRoutes } from './s3-admin.js';

const limits = {
  defaultMaxDownloads: 3,
  maxDownloadsLimit: 100,
  defaultTtlSeconds: 3600,
  maxTtlSeconds: 7 * 86400,
};

let dir: string;
let store: SqliteMetadataStore;
let app: Hono<{ Bindings: HttpBindings }>;
let accessKeys: AccessKeys;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trove-s3-admin-'));
  store = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
  const log = createLogger('test', 'silent');
  accessKeys = new AccessKeys({ store: store.s3, clusterSecret: 'a-cluster-secret' });
  app = new Hono();
  app.onError(errorHandler(log));
  app.route('/admin/s3', s3AdminRoutes({ accessKeys, store, limits, log }));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const send = (method: string, path: string, body?: unknown) =>
  app.request(path, {
    method,
    ...(body !== undefined && {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    }),
  });

describe('admin: S3 access keys', () => {
  it('makes a key (the secret once), lists it without the secret, revokes it once', async () => {
    const made = await send('POST', '/admin/s3/keys', { name: 'ci' });
    expect(made.status).toBe(201);
    const key = (await made.json()) as Record<string, string>;
    expect(key).toMatchObject({ name: 'ci', revoked_at: null });
    expect(key.access_key_id).toMatch(/^TRV[A-Z0-9]{17}$/);
    expect(key.secret_access_key).toHaveLength(40);
    expect(await accessKeys.secretFor(key.access_key_id!)).toBe(key.secret_access_key);

    const listed = await (await send('GET', '/admin/s3/keys')).text();
    expect(listed).toContain(key.access_key_id);
    expect(listed).not.toContain(key.secret_access_key);

    expect((await send('DELETE', `/admin/s3/keys/${key.access_key_id}`)).status).toBe(204);
    const again = await send('DELETE', `/admin/s3/keys/${key.access_key_id}`);
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ error: { code: 'ACCESS_KEY_NOT_FOUND' } });
    expect((await send('DELETE', '/admin/s3/keys/nonsense')).status).toBe(404);
    expect(await accessKeys.secretFor(key.access_key_id!)).toBeUndefined();
  });

  it('takes an empty body, and refuses unknown fields', async () => {
    expect((await app.request('/admin/s3/keys', { method: 'POST' })).status).toBe(201);
    expect((await send('POST', '/admin/s3/keys', { name: 'x', secret: 'mine' })).status).toBe(400);
  });
});

describe('admin: bucket defaults', () => {
  beforeEach(async () => {
    await store.s3.createBucket({ name: 'photos', owner: 'TRVOWNER', createdAt: 1 });
  });

  it('reads, sets and clears them, validated as upload options', async () => {
    const path = '/admin/s3/buckets/photos/defaults';
    expect(await (await send('GET', path)).json()).toEqual({
      bucket: 'photos',
      max_downloads: null,
      ttl: null,
    });
    const set = await send('PUT', path, { max_downloads: 0, ttl: '2h' });
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ bucket: 'photos', max_downloads: 0, ttl: 7200 });
    expect(await (await send('GET', path)).json()).toEqual({
      bucket: 'photos',
      max_downloads: 0,
      ttl: 7200,
    });
    for (const bad of [{ max_downloads: 101 }, { max_downloads: 1.5 }, { ttl: '8d' }, { ttl: 0 }]) {
      const res = await send('PUT', path, bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'INVALID_OPTION' } });
    }
    expect(await (await send('PUT', path, { max_downloads: '5' })).json()).toEqual({
      bucket: 'photos',
      max_downloads: 5,
      ttl: null,
    });
  });

  it('answers 404 for a bucket that does not exist or could not', async () => {
    for (const name of ['nothing', 'Not_A_Bucket']) {
      const res = await send('GET', `/admin/s3/buckets/${name}/defaults`);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: 'NO_SUCH_BUCKET' } });
      expect((await send('PUT', `/admin/s3/buckets/${name}/defaults`, {})).status).toBe(404);
    }
  });
});

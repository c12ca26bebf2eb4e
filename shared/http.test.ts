import Database from 'better-sqlite3';
import { Hono } from 'hono';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { close, errorHandler, listen } from './http.js';
import { createLogger } from './logger.js';

let server: Awaited<ReturnType<typeof listen>> | undefined;
afterEach(async () => {
  if (server) await close(server, 100);
  server = undefined;
});

/**
 * A real server whose routes fail as a dropped connection to a storage node
 * does, and as a write to a SQLite database another connection holds locked.
 */
async function serve(locked?: Database.Database): Promise<string> {
  const app = new Hono();
  app.onError(errorHandler(createLogger('test', 'silent')));
  app.get('/peer-reset', () => {
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  });
  app.post('/write', (c) => {
    locked!.prepare('INSERT INTO t VALUES (1)').run();
    return c.body(null, 204);
  });
  server = await listen(app, '127.0.0.1', 0);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('errorHandler', () => {
  it('answers a client still waiting with a JSON 503 when a peer drops its connection', async () => {
    const res = await fetch(`${await serve()}/peer-reset`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(await res.json()).toEqual({
      error: { code: 'PEER_CONNECTION_LOST', message: expect.stringContaining('storage node') },
    });
  });

  it('answers 503 METADATA_BUSY, not a 500, when SQLite stays locked past busy_timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trove-busy-'));
    const holder = new Database(join(dir, 'db.sqlite'));
    const writer = new Database(join(dir, 'db.sqlite'));
    try {
      holder.exec('CREATE TABLE t (x INTEGER)');
      writer.pragma('busy_timeout = 50');
      holder.exec('BEGIN EXCLUSIVE');
      const res = await fetch(`${await serve(writer)}/write`, { method: 'POST' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('2');
      expect(await res.json()).toEqual({
        error: { code: 'METADATA_BUSY', message: expect.stringContaining('busy') },
      });
    } finally {
      holder.close();
      writer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The MetadataStore contract against the real PostgreSQL server (never an
 * emulator: the races that matter need a real one), each test on a database
 * of its own; and the migrations, run by several processes' pools at once.
 */
import type { EventEmitter } from 'node:events';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  metadataStoreContract,
  newUpload,
  type ContractTarget,
} from '../shared/metadata-store.contract.js';
import { s3MetadataContract } from '../shared/s3-metadata.contract.js';
import { PostgresMetadataStore, isConnectionError } from '../shared/postgres-metadata-store.js';
import { PG_MIGRATIONS } from '../shared/postgres-migrations.js';
import { createLogger } from '../shared/logger.js';
import { createDatabase, queryPg, type TestDatabase } from './postgres.js';

const log = createLogger('test', 'silent');
let db: TestDatabase;

const postgres: ContractTarget = {
  async open() {
    db = await createDatabase('contract');
    return PostgresMetadataStore.open({ url: db.url, log });
  },
  connect: () => PostgresMetadataStore.open({ url: db.url, log }),
  cleanup: () => db.drop(),
};
metadataStoreContract('PostgresMetadataStore', postgres);
s3MetadataContract('PostgresMetadataStore', postgres);

describe('PostgreSQL migrations', () => {
  it('are applied once when several processes start together', async () => {
    const target = await createDatabase('migrate');
    try {
      const stores = await Promise.all(
        Array.from({ length: 6 }, () => PostgresMetadataStore.open({ url: target.url, log })),
      );
      const applied = await queryPg<{ version: number }>(
        target.url,
        'SELECT version FROM trove_migrations ORDER BY version',
      );
      expect(applied.map((r) => r.version)).toEqual(PG_MIGRATIONS.map((_, i) => i + 1));
      for (const store of stores) expect(await store.ping()).toBe(true);
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await target.drop();
    }
  });
});

describe('PostgreSQL connection lost in a transaction', () => {
  it('fails the transaction with 503, changes nothing, and does not crash the process', async () => {
    const target = await createDatabase('lost');
    const store = await PostgresMetadataStore.open({ url: target.url, log, poolSize: 1 });
    try {
      // Two uploads commit together, in one transaction (a single one is one statement).
      const ids = ['lost-commit', 'lost-commit-2'];
      for (const id of ids) await store.beginUpload(newUpload(id, { expiresAt: 9e12 }));
      const commit = () =>
        store.commitUploads(
          ids.map((id) => ({
            id,
            size: 10,
            sha256: 'x',
            maxDownloads: 3,
            expiresAt: 9e12,
            replicas: [{ key: id, node: 'node1', state: 'ok' as const }],
          })),
        );
      // The transaction waits for the pool's only client; the FATAL of a terminated session
      // comes in the same chunk as the result that frees it, so pg's parser reads it right
      // after the client is handed over (synchronously), before any `await` resumes.
      const pool = (store as unknown as { pool: pg.Pool }).pool;
      const busy = pool.query('SELECT pg_sleep(0.2)');
      await new Promise((held) => pool.once('acquire', held));
      pool.once('acquire', (client: pg.PoolClient) =>
        process.nextTick(() => {
          const fatal = Object.assign(
            new Error('terminating connection due to administrator command'),
            { code: '57P01', severity: 'FATAL' },
          );
          (client as unknown as { connection: EventEmitter }).connection.emit(
            'errorMessage',
            fatal,
          );
        }),
      );
      await expect(commit()).rejects.toMatchObject({ status: 503, code: 'DATABASE_UNAVAILABLE' });
      await busy;
      expect(await store.getFile('lost-commit')).toMatchObject({ state: 'pending' });
      expect(await store.replicasOf('lost-commit')).toEqual([]);
      // The broken client left the pool; the next transaction runs on a sound one.
      await commit();
      expect(await store.getFile('lost-commit')).toMatchObject({ state: 'committed' });
    } finally {
      await store.close();
      await target.drop();
    }
  });
});

describe('PostgreSQL prepared statements', () => {
  it('survive another process adding a column (a rolling upgrade), reads and writes alike', async () => {
    const target = await createDatabase('stale-plan');
    // One connection: the statements prepared on it are the ones the ALTER makes stale.
    const store = await PostgresMetadataStore.open({ url: target.url, poolSize: 1, log });
    try {
      const upload = (id: string) => store.beginUpload(newUpload(id));
      const commit = (id: string) =>
        store.commitUploads([
          {
            id,
            size: 10,
            sha256: 'x',
            maxDownloads: 3,
            expiresAt: 10_000,
            replicas: [{ key: id, node: 'node1', state: 'ok' as const }],
          },
        ]);
      await upload('a');
      await commit('a');
      expect((await store.getFile('a'))?.state).toBe('committed');
      await queryPg(target.url, 'ALTER TABLE files ADD COLUMN later_feature TEXT');
      expect((await store.getFile('a'))?.state).toBe('committed');
      await upload('b');
      await commit('b');
      expect(await store.grantDownloads('b', 1, 0)).toEqual({ before: 0, after: 1 });
      expect((await store.replicasOf('b')).map((r) => r.node)).toEqual(['node1']);
    } finally {
      await store.close();
      await target.drop();
    }
  });
});

describe('isConnectionError', () => {
  it('takes a lost or unreachable server for one, a failed statement not', () => {
    const err = (message: string, code?: string) => Object.assign(new Error(message), { code });
    for (const e of [
      err('terminating connection due to administrator command', '57P01'),
      err('the database system is starting up', '57P03'),
      err('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      err('Connection terminated unexpectedly'),
      err('Client has encountered a connection error and is not queryable'),
      // pg-pool: no connection within connectionTimeoutMillis (a frozen server, a full pool)
      err('timeout exceeded when trying to connect'),
    ])
      expect(isConnectionError(e), e.message).toBe(true);
    expect(isConnectionError(err('duplicate key value', '23505'))).toBe(false);
  });
});

describe('PostgreSQL statement timeout', () => {
  it('answers 503 when a statement waits past it (a table locked elsewhere), then works again', async () => {
    const target = await createDatabase('timeout');
    const store = await PostgresMetadataStore.open({
      url: target.url,
      log,
      statementTimeoutMs: 300,
    });
    const locker = new pg.Client({ connectionString: target.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE files IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      await expect(store.getFile('timeout-read')).rejects.toMatchObject({
        status: 503,
        code: 'DATABASE_UNAVAILABLE',
      });
      await expect(store.beginUpload(newUpload('timeout-write'))).rejects.toMatchObject({
        status: 503,
      });
      expect(Date.now() - started).toBeLessThan(10_000);
      await locker.query('ROLLBACK');
      await store.beginUpload(newUpload('timeout-write'));
      expect((await store.getFile('timeout-write'))?.state).toBe('pending');
    } finally {
      await locker.end();
      await store.close();
      await target.drop();
    }
  });
});

/**
 * The MetadataStore contract against the real PostgreSQL server (never an
 * emulator: the races that matter need a real one), each test on a database
 * of its own; and the migrations, run by several processes' pools at once.
 */
import { describe, expect, it } from 'vitest';
import { metadataStoreContract } from '../shared/metadata-store.contract.js';
import { PostgresMetadataStore } from '../shared/postgres-metadata-store.js';
import { PG_MIGRATIONS } from '../shared/postgres-migrations.js';
import { createLogger } from '../shared/logger.js';
import { createDatabase, queryPg, type TestDatabase } from './postgres.js';

const log = createLogger('test', 'silent');
let db: TestDatabase;

metadataStoreContract('PostgresMetadataStore', {
  async open() {
    db = await createDatabase('contract');
    return PostgresMetadataStore.open({ url: db.url, log });
  },
  connect: () => PostgresMetadataStore.open({ url: db.url, log }),
  cleanup: () => db.drop(),
});

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

describe('PostgreSQL prepared statements', () => {
  it('survive another process adding a column (a rolling upgrade), reads and writes alike', async () => {
    const target = await createDatabase('stale-plan');
    // One connection: the statements prepared on it are the ones the ALTER makes stale.
    const store = await PostgresMetadataStore.open({ url: target.url, poolSize: 1, log });
    try {
      const upload = (id: string) =>
        store.beginUpload({
          id,
          name: 'a.jpg',
          contentType: 'image/jpeg',
          maxDownloads: 3,
          createdAt: 1,
          expiresAt: 10_000,
          deleteTokenHash: 'h',
          owner: 'gw',
        });
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

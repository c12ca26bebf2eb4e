import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { FILE_COLUMNS } from './metadata-rows.js';
import { bucketObjectSql, OBJECT_COLUMNS, toBucketObject } from './s3-rows.js';
import { migrate } from './sqlite-metadata-store.js';

describe('bucketObjectSql', () => {
  it('reads the bucket, the object and its file each by its index, never scanning or materialising a table', () => {
    const db = new Database(':memory:');
    migrate(db);
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN ${bucketObjectSql('@bucket', '@key', '@now')}`)
      .all({ bucket: 'photos', key: 'k', now: 1 }) as { detail: string }[];
    db.close();
    const steps = plan.map((p) => p.detail);
    expect(steps).toHaveLength(3);
    for (const step of steps) expect(step).toMatch(/^SEARCH \w+ USING INDEX /);
  });

  it('selects the bucket, the object, the file and the visibility in the order toBucketObject reads them', () => {
    const db = new Database(':memory:');
    migrate(db);
    const names = db
      .prepare(bucketObjectSql('@bucket', '@key', '@now'))
      .columns()
      .map((c) => c.name);
    db.close();
    expect(names).toEqual([
      ...['name', 'owner', 'created_at', 'default_max_downloads', 'default_ttl_seconds'].map(
        (c) => `b_${c}`,
      ),
      ...OBJECT_COLUMNS.map((c) => `o_${c}`),
      ...FILE_COLUMNS.map((c) => `f_${c}`),
      'object_visible',
    ]);
  });

  it('reads a bucket without a visible object as no object and no file', () => {
    const noObject = Array(OBJECT_COLUMNS.length + FILE_COLUMNS.length).fill(null);
    const values = ['photos', 'AKID', 5, null, 3600, ...noObject, 0];
    expect(toBucketObject(values)).toEqual({
      bucket: {
        name: 'photos',
        owner: 'AKID',
        createdAt: 5,
        defaultMaxDownloads: null,
        defaultTtlSeconds: 3600,
      },
      object: undefined,
      file: undefined,
    });
  });
});

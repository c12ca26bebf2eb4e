import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { bucketObjectSql } from './s3-rows.js';
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
});

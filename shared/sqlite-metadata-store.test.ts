import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { metadataStoreContract, type ContractTarget } from './metadata-store.contract.js';
import { s3MetadataContract } from './s3-metadata.contract.js';
import { SqliteMetadataStore, migrate, openDatabase } from './sqlite-metadata-store.js';

let dir: string;

const sqlite: ContractTarget = {
  async open() {
    dir = mkdtempSync(join(tmpdir(), 'trove-store-'));
    return new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
  },
  async connect() {
    return new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
  },
  async cleanup() {
    rmSync(dir, { recursive: true, force: true });
  },
};
metadataStoreContract('SqliteMetadataStore', sqlite);
s3MetadataContract('SqliteMetadataStore', sqlite);

describe('migration 3', () => {
  it('makes the images of an older database pending and the rest skipped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trove-store-'));
    const path = join(dir, 'old.db');
    const db = new Database(path);
    db.exec(
      `CREATE TABLE files (id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0,
         content_type TEXT NOT NULL, sha256 TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,
         max_downloads INTEGER NOT NULL, downloads_used INTEGER NOT NULL DEFAULT 0,
         created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, delete_token_hash TEXT NOT NULL,
         owner TEXT NOT NULL, deleted_at INTEGER, delete_reason TEXT) STRICT;
       CREATE TABLE replicas (key TEXT NOT NULL, file_id TEXT NOT NULL, node TEXT NOT NULL,
         state TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (key, node)) STRICT;
       INSERT INTO files (id, name, content_type, state, max_downloads, created_at, expires_at, delete_token_hash, owner)
         VALUES ('a', 'a.png', 'image/png', 'committed', 0, 1, 9, 'h', 'gw'),
                ('b', 'b.pdf', 'application/pdf', 'committed', 0, 1, 9, 'h', 'gw');
       PRAGMA user_version = 2;`,
    );
    migrate(db);
    expect(
      db.prepare(`SELECT id, processing, processing_attempts AS n FROM files ORDER BY id`).all(),
    ).toEqual([
      { id: 'a', processing: 'pending', n: 0 },
      { id: 'b', processing: 'skipped', n: 0 },
    ]);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

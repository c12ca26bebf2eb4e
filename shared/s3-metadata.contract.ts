/**
 * The contract of the S3 part of a MetadataStore (s3-metadata.ts), run with
 * the store's own contract by each store's test file: access keys, buckets,
 * objects and their visibility, UTF-8 byte order, races between two
 * connections, and S3 multipart parts.
 */
import { describe, expect, it } from 'vitest';
import {
  contractStores,
  newResumable,
  newUpload,
  type ContractTarget,
} from './metadata-store.contract.js';
import type { MetadataStore } from './metadata-store.js';
import type { S3Object } from './s3-metadata.js';
import { afterPrefix, compareKeys } from './s3-names.js';

const NOW = 5_000;
const LATER = 1_000_000;

export function s3MetadataContract(name: string, target: ContractTarget): void {
  describe(`${name} (S3 metadata contract)`, () => {
    let store: MetadataStore;
    const second = contractStores(target, (opened) => (store = opened));

    let seq = 0;
    /** A committed file expiring at `expiresAt`; its id. */
    async function file(expiresAt = LATER): Promise<string> {
      const id = `s3file${String(seq++).padStart(16, '0')}`;
      await store.beginUpload(newUpload(id, { expiresAt }));
      await store.commitUploads([
        { id, size: 5, sha256: 'x', maxDownloads: 3, expiresAt, replicas: [] },
      ]);
      return id;
    }

    function object(bucket: string, key: string, fileId: string, o: Partial<S3Object> = {}) {
      return {
        bucket,
        key,
        fileId,
        etag: '"5d41402abc4b2a76b9719d911017c592"',
        size: 5,
        contentType: 'text/plain',
        lastModified: 1234,
        userMetadata: { 'max-downloads': '3', author: 'zoë' },
        md5: '5d41402abc4b2a76b9719d911017c592',
        ...o,
      };
    }

    async function bucket(name = 'photos', owner = 'TRVOWNER0000000000001'): Promise<string> {
      expect(await store.s3.createBucket({ name, owner, createdAt: 1 })).toBe('created');
      return name;
    }

    describe('access keys', () => {
      it('keeps a key as created, lists every key, and revokes it once, dropping the sealed secret', async () => {
        const key = {
          id: 'TRVAAAAAAAAAAAAAAAAA',
          name: 'ci',
          sealedSecret: 'v1.sealed',
          createdAt: 7,
        };
        await store.s3.createAccessKey(key);
        await store.s3.createAccessKey({ ...key, id: 'TRVBBBBBBBBBBBBBBBBB', createdAt: 8 });
        expect(await store.s3.getAccessKey(key.id)).toEqual({ ...key, revokedAt: null });
        expect((await store.s3.listAccessKeys()).map((k) => k.id)).toEqual([
          'TRVAAAAAAAAAAAAAAAAA',
          'TRVBBBBBBBBBBBBBBBBB',
        ]);
        expect(await store.s3.revokeAccessKey(key.id, 99)).toBe(true);
        expect(await store.s3.revokeAccessKey(key.id, 100)).toBe(false);
        expect(await store.s3.revokeAccessKey('TRVNOSUCHKEY00000000', 100)).toBe(false);
        expect(await (await second()).s3.getAccessKey(key.id)).toEqual({
          ...key,
          sealedSecret: null,
          revokedAt: 99,
        });
        expect(await store.s3.getAccessKey('TRVNOSUCHKEY00000000')).toBeUndefined();
      });
    });

    describe('buckets', () => {
      it('creates a name once, telling its owner from another key', async () => {
        await bucket('photos', 'TRVA');
        expect(await store.s3.createBucket({ name: 'photos', owner: 'TRVA', createdAt: 2 })).toBe(
          'owned-by-you',
        );
        expect(await store.s3.createBucket({ name: 'photos', owner: 'TRVB', createdAt: 2 })).toBe(
          'exists',
        );
        expect(await store.s3.getBucket('photos')).toEqual({
          name: 'photos',
          owner: 'TRVA',
          createdAt: 1,
          defaultMaxDownloads: null,
          defaultTtlSeconds: null,
        });
        expect(await store.s3.getBucket('nothing')).toBeUndefined();
      });

      it("lists an owner's buckets by name", async () => {
        await bucket('zeta', 'TRVA');
        await bucket('alpha', 'TRVA');
        await bucket('other', 'TRVB');
        expect((await store.s3.listBuckets('TRVA')).map((b) => b.name)).toEqual(['alpha', 'zeta']);
        expect(await store.s3.listBuckets('TRVC')).toEqual([]);
      });

      it('replaces the defaults, null meaning the gateway’s', async () => {
        await bucket();
        expect(
          await store.s3.setBucketDefaults('photos', { maxDownloads: 0, ttlSeconds: 60 }),
        ).toBe(true);
        expect(await store.s3.getBucket('photos')).toMatchObject({
          defaultMaxDownloads: 0,
          defaultTtlSeconds: 60,
        });
        await store.s3.setBucketDefaults('photos', { maxDownloads: 5, ttlSeconds: null });
        expect(await store.s3.getBucket('photos')).toMatchObject({
          defaultMaxDownloads: 5,
          defaultTtlSeconds: null,
        });
        expect(
          await store.s3.setBucketDefaults('nothing', { maxDownloads: 1, ttlSeconds: 1 }),
        ).toBe(false);
      });

      it('lets exactly one of two connections create the same name', async () => {
        const other = await second();
        const results = await Promise.all([
          store.s3.createBucket({ name: 'race', owner: 'TRVA', createdAt: 1 }),
          other.s3.createBucket({ name: 'race', owner: 'TRVB', createdAt: 1 }),
        ]);
        expect(results.sort()).toEqual(['created', 'exists']);
      });

      it('deletes only a bucket without visible objects, the rows of gone files with it', async () => {
        await bucket();
        expect(await store.s3.deleteBucket('nothing', NOW)).toBe('no-bucket');
        await store.s3.putObject(object('photos', 'live', await file()));
        await store.s3.putObject(object('photos', 'expired', await file(NOW + 10)));
        expect(await store.s3.deleteBucket('photos', NOW)).toBe('not-empty');
        await store.s3.deleteObject('photos', 'live');
        // The expired one still has its row, but is not there for S3.
        expect(await store.s3.deleteBucket('photos', NOW)).toBe('not-empty');
        expect(await store.s3.deleteBucket('photos', NOW + 10)).toBe('deleted');
        expect(await store.s3.getBucket('photos')).toBeUndefined();
        expect(await store.s3.createBucket({ name: 'photos', owner: 'TRVB', createdAt: 3 })).toBe(
          'created',
        );
      });
    });

    describe('objects', () => {
      it('keeps an object as put and returns the file it replaced', async () => {
        await bucket();
        const [a, b] = [await file(), await file()];
        expect(await store.s3.putObject(object('photos', 'k', a))).toEqual({
          status: 'stored',
          previousFileId: undefined,
        });
        expect(await store.s3.getObject('photos', 'k', NOW)).toEqual(object('photos', 'k', a));
        expect(
          await store.s3.putObject(
            object('photos', 'k', b, { md5: null, etag: '"abc-2"', size: 9 }),
          ),
        ).toEqual({ status: 'stored', previousFileId: a });
        expect(await (await second()).s3.getObject('photos', 'k', NOW)).toMatchObject({
          fileId: b,
          md5: null,
          etag: '"abc-2"',
          size: 9,
        });
        // The same file again replaces nothing the caller should tombstone.
        expect(await store.s3.putObject(object('photos', 'k', b))).toEqual({
          status: 'stored',
          previousFileId: undefined,
        });
      });

      it('stores nothing without a bucket, or for a file not committed or a tombstone', async () => {
        await bucket();
        const live = await file();
        expect(await store.s3.putObject(object('nothing', 'k', live))).toEqual({
          status: 'no-bucket',
        });
        await store.beginUpload(newUpload('s3pending0000000000000'));
        expect(await store.s3.putObject(object('photos', 'k', 's3pending0000000000000'))).toEqual({
          status: 'file-gone',
        });
        expect(await store.s3.putObject(object('photos', 'k', 'unknown'))).toEqual({
          status: 'file-gone',
        });
        await store.markDeleted(live, 'deleted', 1);
        expect(await store.s3.putObject(object('photos', 'k', live))).toEqual({
          status: 'file-gone',
        });
        expect(await store.s3.listObjects('photos', { limit: 10, now: NOW })).toEqual([]);
      });

      it('finds a bucket and its visible object in one read', async () => {
        expect(await store.s3.findObject('photos', 'k', NOW)).toBeUndefined();
        await bucket();
        const photos = await store.s3.getBucket('photos');
        expect(await store.s3.findObject('photos', 'k', NOW)).toEqual({
          bucket: photos,
          object: undefined,
          file: undefined,
        });
        const [f, expiring] = [await file(), await file(NOW + 1)];
        await store.s3.putObject(object('photos', 'k', f));
        await store.s3.putObject(object('photos', 'soon', expiring));
        expect(await store.s3.findObject('photos', 'k', NOW)).toEqual({
          bucket: photos,
          object: object('photos', 'k', f),
          file: await store.getFile(f),
        });
        expect(await store.s3.findObject('photos', 'soon', NOW + 1)).toEqual({
          bucket: photos,
          object: undefined,
          file: undefined,
        });
      });

      it('deletes a row and returns its file; nothing for a key without one', async () => {
        await bucket();
        const f = await file();
        await store.s3.putObject(object('photos', 'k', f));
        expect(await store.s3.deleteObject('photos', 'k')).toBe(f);
        expect(await store.s3.deleteObject('photos', 'k')).toBeUndefined();
        expect(await store.s3.getObject('photos', 'k', NOW)).toBeUndefined();
      });

      it('hides objects whose file expired, was deleted, and drops them when it is purged', async () => {
        await bucket();
        const [expiring, deleted] = [await file(NOW + 1), await file()];
        await store.s3.putObject(object('photos', 'expiring', expiring));
        await store.s3.putObject(object('photos', 'deleted', deleted));
        expect((await store.s3.listObjects('photos', { limit: 10, now: NOW })).length).toBe(2);
        expect(await store.s3.getObject('photos', 'expiring', NOW + 1)).toBeUndefined();
        await store.markDeleted(deleted, 'deleted', 10);
        expect(await store.s3.getObject('photos', 'deleted', NOW)).toBeUndefined();
        expect(
          (await store.s3.listObjects('photos', { limit: 10, now: NOW })).map((o) => o.key),
        ).toEqual(['expiring']);
        await store.purgeTombstones(11);
        // The row went with its file: deleting it now finds nothing.
        expect(await store.s3.deleteObject('photos', 'deleted')).toBeUndefined();
      });

      it('lists keys in UTF-8 byte order, by prefix, after a key, and from a bound', async () => {
        await bucket();
        const keys = [
          'a',
          'B',
          'é',
          'z',
          '~',
          '中',
          '\uffff',
          '\u{10000}',
          'p/1',
          'p/2',
          'p0',
          'p%',
          'p_',
        ];
        const f = await file();
        for (const key of keys) await store.s3.putObject(object('photos', key, f));
        const list = async (q: Parameters<MetadataStore['s3']['listObjects']>[1]) =>
          (await store.s3.listObjects('photos', q)).map((o) => o.key);
        expect(await list({ limit: 100, now: NOW })).toEqual([...keys].sort(compareKeys));
        expect(await list({ limit: 100, now: NOW })).toEqual([
          'B',
          'a',
          'p%',
          'p/1',
          'p/2',
          'p0',
          'p_',
          'z',
          '~',
          'é',
          '中',
          '\uffff',
          '\u{10000}',
        ]);
        // A prefix is a range, not a pattern: % and _ match only themselves.
        expect(await list({ prefix: 'p/', limit: 100, now: NOW })).toEqual(['p/1', 'p/2']);
        expect(await list({ prefix: 'p%', limit: 100, now: NOW })).toEqual(['p%']);
        expect(await list({ prefix: 'p', startAfter: 'p/1', limit: 2, now: NOW })).toEqual([
          'p/2',
          'p0',
        ]);
        // A delimiter listing skips past the common prefix p/ in one step.
        expect(await list({ startAt: afterPrefix('p/')!, limit: 2, now: NOW })).toEqual([
          'p0',
          'p_',
        ]);
        expect(await list({ startAfter: '中', limit: 100, now: NOW })).toEqual([
          '\uffff',
          '\u{10000}',
        ]);
        expect(await list({ limit: 100, now: NOW, prefix: 'q' })).toEqual([]);
        expect(await store.s3.listObjects('other', { limit: 100, now: NOW })).toEqual([]);
      });

      it('gives each of two concurrent puts of a new key the file it replaced', async () => {
        await bucket();
        const other = await second();
        const [a, b] = [await file(), await file()];
        const results = await Promise.all([
          store.s3.putObject(object('photos', 'race', a)),
          other.s3.putObject(object('photos', 'race', b)),
        ]);
        const replaced = results.map((r) => (r.status === 'stored' ? r.previousFileId : 'x'));
        const kept = (await store.s3.getObject('photos', 'race', NOW))!.fileId;
        // One replaced nothing, the other replaced the first one's file; the row names the last.
        expect(replaced.filter((r) => r === undefined)).toHaveLength(1);
        const loser = replaced.find((r) => r !== undefined);
        expect([a, b].sort()).toEqual([kept, loser].sort());
      });
    });

    describe('multipart uploads', () => {
      const s3 = (key: string) => ({ bucket: 'photos', key });

      it('lists the uploading S3 uploads of a bucket by key and prefix, not tus uploads', async () => {
        await store.createResumable(newResumable('u1', { s3: s3('b/2'), createdAt: 2 }));
        await store.createResumable(newResumable('u2', { s3: s3('a'), createdAt: 3 }));
        await store.createResumable(newResumable('u3', { s3: s3('b/2'), createdAt: 1 }));
        await store.createResumable(newResumable('u4', { s3: s3('b/3') }));
        await store.createResumable(newResumable('u5', { s3: { bucket: 'other', key: 'a' } }));
        await store.createResumable(newResumable('tus'));
        await store.endResumable('u4', 'terminated');
        expect(await store.getResumable('u1')).toMatchObject({ s3: s3('b/2') });
        expect(await store.getResumable('tus')).toMatchObject({ s3: null });
        const ids = async (prefix?: string, limit = 10) =>
          (await store.s3.listMultipartUploads('photos', { prefix, limit })).map((u) => u.uploadId);
        expect(await ids()).toEqual(['u2', 'u3', 'u1']);
        expect(await ids('b/')).toEqual(['u3', 'u1']);
        expect(await ids(undefined, 1)).toEqual(['u2']);
        expect((await store.s3.listMultipartUploads('photos', { limit: 1 }))[0]).toEqual({
          uploadId: 'u2',
          bucket: 'photos',
          key: 'a',
          createdAt: 3,
        });
      });

      it('stores numbered parts in any order; one sent again replaces the older', async () => {
        await store.createResumable(newResumable('mp', { s3: s3('big'), length: null }));
        const part = (key: string, partNumber: number, createdAt: number) =>
          store.beginPart({
            uploadId: 'mp',
            key,
            offset: 0,
            nodes: ['node1'],
            createdAt,
            partNumber,
          });
        const store_ = (key: string, partNumber: number, size: number) =>
          store.s3.storeNumberedPart({
            uploadId: 'mp',
            key,
            partNumber,
            size,
            sha256: `sha-${key}`,
            md5: `md5-${key}`,
            nodes: ['node1', 'node2'],
          });
        await part('p2', 2, 1);
        await part('p1', 1, 2);
        await part('p1b', 1, 3);
        expect(await store_('p2', 2, 20)).toEqual({ stored: true, replaced: [] });
        expect(await store_('p1', 1, 10)).toEqual({ stored: true, replaced: [] });
        expect(await store_('p1', 1, 10)).toEqual({ stored: false, replaced: [] });
        const again = await store_('p1b', 1, 11);
        expect(again.stored).toBe(true);
        expect(again.replaced.map((p) => p.key)).toEqual(['p1']);
        const parts = await (await second()).s3.listParts('mp');
        expect(parts.map((p) => [p.partNumber, p.key, p.size, p.md5])).toEqual([
          [1, 'p1b', 11, 'md5-p1b'],
          [2, 'p2', 20, 'md5-p2'],
        ]);
        expect(parts[0]).toMatchObject({ stored: true, nodes: ['node1', 'node2'] });
        // The offset counts the stored bytes; the replaced part is still tracked, for its removal.
        expect((await store.getResumable('mp'))!.offset).toBe(31);
        expect((await store.getPart('p1'))!.stored).toBe(false);
        expect((await store.partsOf('mp')).map((p) => p.key).sort()).toEqual(['p1', 'p1b', 'p2']);
      });

      it('stores no numbered part of a tus upload or of an ended one', async () => {
        await store.createResumable(newResumable('tus'));
        await store.createResumable(newResumable('ended', { s3: s3('k') }));
        for (const uploadId of ['tus', 'ended']) {
          await store.beginPart({
            uploadId,
            key: `${uploadId}-p`,
            offset: 0,
            nodes: [],
            createdAt: 1,
            partNumber: 1,
          });
        }
        await store.endResumable('ended', 'terminated');
        for (const uploadId of ['tus', 'ended']) {
          expect(
            await store.s3.storeNumberedPart({
              uploadId,
              key: `${uploadId}-p`,
              partNumber: 1,
              size: 1,
              sha256: 's',
              md5: 'm',
              nodes: [],
            }),
          ).toEqual({ stored: false, replaced: [] });
          expect(await store.s3.listParts(uploadId)).toEqual([]);
        }
      });
    });
  });
}

/**
 * The contract of a MetadataStore, one suite for every implementation (as
 * tus-node-server runs one suite over every data store): states, races
 * between two connections, paging, expiry queries, variants, repairs,
 * download grants. Each store's test file calls `metadataStoreContract` with
 * a way to open a fresh, empty store and a second connection to it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Layout, LayoutNode } from './layout.js';
import type { MetadataStore, NewResumable, NewUpload, ReplicaState } from './metadata-store.js';

export interface ContractTarget {
  /** A fresh, empty store (a new file, a new database). */
  open(): Promise<MetadataStore>;
  /** Another connection (another process's view) to the store `open` last returned. */
  connect(): Promise<MetadataStore>;
  /** Removes what `open` made, once its stores are closed. */
  cleanup(): Promise<void>;
}

/** Upload `id` as the suites begin it: an image, 3 downloads, expiring at 10 s of the epoch, `o` changed. */
export function newUpload(id: string, o: Partial<NewUpload> = {}): NewUpload {
  return {
    id,
    name: 'a.jpg',
    contentType: 'image/jpeg',
    maxDownloads: 3,
    createdAt: 1,
    expiresAt: 10_000,
    deleteTokenHash: 'h',
    owner: 'gw',
    ...o,
  };
}

/** Resumable upload `id` of client 10.0.0.1: 100 bytes, created at 1, expiring at 10 s of the epoch, `o` changed. */
export function newResumable(id: string, o: Partial<NewResumable> = {}): NewResumable {
  return {
    id,
    fileId: `file-${id}`,
    name: 'a.jpg',
    length: 100,
    maxDownloads: 3,
    ttlSeconds: 3600,
    metadata: { filename: 'a.jpg' },
    client: '10.0.0.1',
    uploadLink: null,
    createdAt: 1,
    expiresAt: 10_000,
    ...o,
  };
}

/** Layout `version` of three nodes in zones a and b, node3 draining, its note `note`. */
export function sampleLayout(version: number, note = `version ${version}`): Layout {
  const node = (i: number, zone: string, weight: number, role: LayoutNode['role']) => ({
    id: `node${i}`,
    url: `http://10.0.0.${i}:9001`,
    zone,
    weight,
    role,
  });
  return {
    version,
    createdAt: 1_700_000_000_000 + version,
    nodes: [node(1, 'a', 1, 'active'), node(2, 'b', 2.5, 'active'), node(3, 'b', 1, 'draining')],
    note,
  };
}

/** Sets a committed file's download count to `used` through the store's own grants. */
async function setUsed(store: MetadataStore, id: string, used: number): Promise<void> {
  const file = (await store.getFile(id))!;
  const unlimited = file.maxDownloads === 0;
  // An unlimited file (max 0) takes no grants: its count stays as the store left it.
  if (!unlimited) await store.grantDownloads(id, used, 0);
}

/**
 * A fresh store from `target` before each test of the enclosing describe
 * (handed to `use`), closed and cleaned up after it; returns `second()`, a
 * second connection to it, closed after the test too.
 */
export function contractStores(
  target: ContractTarget,
  use: (store: MetadataStore) => void,
): () => Promise<MetadataStore> {
  let store: MetadataStore | undefined;
  const others: MetadataStore[] = [];
  beforeEach(async () => {
    store = await target.open();
    use(store);
  });
  afterEach(async () => {
    for (const other of others.splice(0)) await other.close();
    await store?.close();
    await target.cleanup();
  });
  return async () => {
    const other = await target.connect();
    others.push(other);
    return other;
  };
}

export function metadataStoreContract(name: string, target: ContractTarget): void {
  describe(`${name} (MetadataStore contract)`, () => {
    let store: MetadataStore;
    const second = contractStores(target, (opened) => (store = opened));

    /** Starts upload `id` (an image, 3 downloads, expiring at 10 s of the epoch) with `o` changed. */
    function begin(id: string, o: Partial<NewUpload> = {}): Promise<void> {
      return store.beginUpload(newUpload(id, o));
    }

    let seq = 0;
    async function committed(expiresAt: number, nodes = ['node1', 'node2', 'node3']) {
      const id = `file${String(seq++).padStart(18, '0')}`;
      await begin(id, { expiresAt });
      await store.commitUploads([
        {
          id,
          size: 10,
          sha256: 'x',
          maxDownloads: 3,
          expiresAt,
          replicas: nodes.map((node) => ({ key: id, node, state: 'ok' as const })),
        },
      ]);
      return id;
    }

    describe('tombstones', () => {
      it('lists live files past their expiry, and only those', async () => {
        const old = await committed(1000);
        await committed(10_000);
        expect((await store.expiredLiveFiles(5000, 10)).map((f) => f.id)).toEqual([old]);
      });

      it('marks a file deleted once, and keeps the first time and reason', async () => {
        const id = await committed(1000);
        expect(await store.markDeleted(id, 'deleted', 2000)).toBe(true);
        expect(await store.markDeleted(id, 'expired', 3000)).toBe(false);
        const file = await store.getFile(id);
        expect(file).toMatchObject({ deletedAt: 2000, deleteReason: 'deleted' });
        expect(await store.expiredLiveFiles(5000, 10)).toEqual([]);
        expect((await store.counts(3)).objects).toBe(0);
      });

      it('owes deletes until each replica row is forgotten', async () => {
        const id = await committed(1000);
        await store.markDeleted(id, 'expired', 2000);
        expect(await store.tombstonesWithBlobs(1999, 10)).toEqual([]); // grace not over yet
        expect((await store.tombstonesWithBlobs(2000, 10)).map((f) => f.id)).toEqual([id]);
        for (const node of ['node1', 'node2']) await store.forgetReplica(id, node);
        expect((await store.tombstonesWithBlobs(2000, 10)).map((f) => f.id)).toEqual([id]);
        await store.forgetReplica(id, 'node3');
        expect(await store.tombstonesWithBlobs(2000, 10)).toEqual([]);
      });

      it('purges tombstones past retention, with any rows left', async () => {
        const gone = await committed(1000);
        const recent = await committed(1000);
        await store.markDeleted(gone, 'expired', 2000);
        await store.markDeleted(recent, 'expired', 9000);
        expect(await store.purgeTombstones(5000)).toBe(1);
        expect(await store.getFile(gone)).toBeUndefined();
        expect(await store.replicasOf(gone)).toEqual([]);
        expect(await store.getFile(recent)).toBeDefined();
      });
    });

    describe('upload states', () => {
      const pending = (id: string) => begin(id);
      const commit = (id: string) =>
        store.commitUploads([
          { id, size: 1, sha256: 'x', maxDownloads: 3, expiresAt: 10_000, replicas: [] },
        ]);

      it('aborts a pending upload, and answers true again for one already aborted', async () => {
        await pending('up-pending');
        expect(await store.abortUpload('up-pending')).toBe(true);
        expect(await store.abortUpload('up-pending')).toBe(true);
        expect((await store.getFile('up-pending'))?.state).toBe('aborted');
      });

      it('refuses to abort an upload that committed, or one that is gone', async () => {
        await pending('up-done');
        await commit('up-done');
        expect(await store.abortUpload('up-done')).toBe(false);
        expect((await store.getFile('up-done'))?.state).toBe('committed');
        expect(await store.abortUpload('no-such-upload')).toBe(false);
      });

      it('refuses to commit an upload a cleanup aborted, with a 503 that says so', async () => {
        await pending('up-late');
        await store.abortUpload('up-late');
        await expect(commit('up-late')).rejects.toMatchObject({
          status: 503,
          code: 'UPLOAD_ABORTED',
        });
      });
    });

    describe('image processing', () => {
      const variant = (name: 'thumb' | 'compressed', sha256 = `sha-${name}`) => ({
        variant: name,
        size: 100,
        width: 256,
        height: 128,
        contentType: 'image/webp',
        sha256,
        createdAt: 5,
      });
      const rows = (id: string, name: string) =>
        ['node1', 'node2', 'node3'].map((node) => ({
          key: `${id}.${name}`,
          node,
          state: 'ok' as const,
        }));

      it('starts images pending and anything else skipped', async () => {
        const image = await committed(10_000);
        expect((await store.getFile(image))?.processing).toBe('pending');
        await begin('pdf000000000000000000a', {
          name: 'a.pdf',
          contentType: 'application/pdf',
          maxDownloads: 0,
        });
        expect((await store.getFile('pdf000000000000000000a'))?.processing).toBe('skipped');
        expect(await store.beginProcessing('pdf000000000000000000a')).toBeNull();
      });

      it('counts unfinished attempts, and uncounts abandoned ones', async () => {
        const id = await committed(10_000);
        expect(await store.beginProcessing(id)).toBe(1);
        expect(await store.beginProcessing(id)).toBe(2); // the first never finished: the worker died
        await store.abandonProcessing(id);
        expect(await store.beginProcessing(id)).toBe(2);
      });

      it('records variants and their replicas once, however often it runs', async () => {
        const id = await committed(10_000);
        const all = [...rows(id, 'thumb'), ...rows(id, 'compressed')];
        for (let i = 0; i < 2; i++)
          expect(
            await store.completeProcessing(id, [variant('thumb'), variant('compressed')], all),
          ).toBe(true);
        expect((await store.variantsOf(id)).map((v) => [v.variant, v.sha256])).toEqual([
          ['compressed', 'sha-compressed'],
          ['thumb', 'sha-thumb'],
        ]);
        expect(await store.replicasOf(id)).toHaveLength(9);
        expect(await store.getFile(id)).toMatchObject({
          processing: 'done',
          processingAttempts: 0,
        });
        expect(await store.beginProcessing(id)).toBeNull();
        // Counted as the file's: not under-replicated, deleted with it.
        expect((await store.counts(3)).underReplicated).toBe(0);
      });

      it('records a first variant without finishing: pending, the attempt ended, the rows kept', async () => {
        const id = await committed(10_000);
        expect(await store.beginProcessing(id)).toBe(1);
        expect(await store.recordVariants(id, [variant('thumb')], rows(id, 'thumb'))).toBe(true);
        expect(await store.getFile(id)).toMatchObject({
          processing: 'pending',
          processingAttempts: 0,
        });
        expect((await store.variantsOf(id)).map((v) => v.variant)).toEqual(['thumb']);
        expect((await store.replicasOf(id)).filter((r) => r.key === `${id}.thumb`)).toHaveLength(
          rows(id, 'thumb').length,
        );
        expect(await store.recordVariants('gone00000000000000000a', [], [])).toBe(false);
      });

      it('fails only a pending file, with its reason', async () => {
        const id = await committed(10_000);
        await store.failProcessing(id, 'corrupt or truncated image: x');
        expect(await store.getFile(id)).toMatchObject({
          processing: 'failed',
          processingError: 'corrupt or truncated image: x',
        });
        const done = await committed(10_000);
        await store.completeProcessing(done, [variant('thumb')], rows(done, 'thumb'));
        await store.failProcessing(done, 'late');
        expect((await store.getFile(done))?.processing).toBe('done');
      });

      it('keeps the rows of variants made for a file deleted meanwhile, for its deletion', async () => {
        const id = await committed(10_000);
        await store.markDeleted(id, 'deleted', 2000);
        expect(await store.completeProcessing(id, [variant('thumb')], rows(id, 'thumb'))).toBe(
          true,
        );
        expect((await store.tombstonesWithBlobs(3000, 10)).map((f) => f.id)).toEqual([id]);
        expect(await store.completeProcessing('gone00000000000000000a', [], [])).toBe(false);
      });

      it('lists live images still pending from before a time', async () => {
        const old = await committed(10_000);
        const fresh = await committed(10_000);
        const deleted = await committed(10_000);
        await store.markDeleted(deleted, 'deleted', 2);
        const done = await committed(10_000);
        await store.completeProcessing(done, [], []);
        // `committed` creates every file at t = 1.
        expect((await store.pendingProcessing(2, 10)).map((f) => f.id)).toEqual([old, fresh]);
        expect(await store.pendingProcessing(1, 10)).toEqual([]);
      });
    });

    describe('listFiles (admin)', () => {
      /** A file created at `createdAt`; committed unless `state` says otherwise. */
      async function file(
        id: string,
        createdAt: number,
        o: { state?: 'pending' | 'aborted'; expiresAt?: number; max?: number; used?: number } = {},
      ) {
        const expiresAt = o.expiresAt ?? 1_000_000;
        const maxDownloads = o.max ?? 3;
        await begin(id, { name: `${id}.jpg`, maxDownloads, createdAt, expiresAt });
        if (o.state === 'aborted') await store.abortUpload(id);
        if (o.state) return;
        await store.commitUploads([
          { id, size: 1, sha256: 'x', maxDownloads, expiresAt, replicas: [] },
        ]);
        if (o.used) await setUsed(store, id, o.used);
      }
      const ids = (files: { id: string }[]) => files.map((f) => f.id);

      it('pages newest first by (created_at, id), ties included, without gaps or repeats', async () => {
        // Three files share one created_at: the id breaks the tie.
        for (const [id, at] of [
          ['a', 10],
          ['b', 20],
          ['c', 20],
          ['d', 20],
          ['e', 30],
        ] as const)
          await file(id, at);
        const seen: string[] = [];
        let after: { createdAt: number; id: string } | undefined;
        for (;;) {
          const page = await store.listFiles({ now: 0, limit: 2, after });
          if (page.length === 0) break;
          seen.push(...ids(page));
          const last = page.at(-1)!;
          after = { createdAt: last.createdAt, id: last.id };
        }
        expect(seen).toEqual(['e', 'd', 'c', 'b', 'a']);
      });

      it('filters by status as GET /files/:id decides it, and by expiring soon', async () => {
        const now = 500_000;
        await file('pending1', 1, { state: 'pending' });
        await file('aborted1', 2, { state: 'aborted' });
        await file('active1', 3, { expiresAt: now + 60_000 });
        await file('active2', 4, { expiresAt: now + 3_600_000, max: 0, used: 9 });
        await file('used1', 5, { max: 2, used: 2 });
        await file('expired1', 6, { expiresAt: now - 1 });
        await file('deleted1', 7);
        await store.markDeleted('deleted1', 'deleted', now);
        const q = (status?: any, expiringBefore?: number) =>
          store.listFiles({ now, limit: 100, status, expiringBefore }).then(ids);
        expect(await q('pending')).toEqual(['pending1']);
        expect(await q('aborted')).toEqual(['aborted1']);
        expect(await q('active')).toEqual(['active2', 'active1']);
        expect(await q('exhausted')).toEqual(['used1']);
        expect(await q('expired')).toEqual(['expired1']);
        expect(await q('deleted')).toEqual(['deleted1']);
        expect(await q()).toHaveLength(7);
        // Expiring within a minute: live files only (not the expired one, not the tombstone).
        expect(await q(undefined, now + 60_000)).toEqual(['active1']);
        expect(await q('active', now + 7_200_000)).toEqual(['active2', 'active1']);
        expect(await q('exhausted', now + 60_000)).toEqual([]);
      });
    });

    describe('upload links', () => {
      it('counts the files of a link that were not aborted, deleted ones included', async () => {
        const upload = (id: string, uploadLink?: string) =>
          begin(id, { expiresAt: Date.now() + 60_000, uploadLink });
        await upload('link-a-kept', 'L1');
        await upload('link-a-pending', 'L1');
        await upload('link-a-aborted', 'L1');
        await upload('link-b', 'L2');
        await upload('no-link');
        await store.commitUploads([
          {
            id: 'link-a-kept',
            size: 1,
            sha256: 'x',
            maxDownloads: 3,
            expiresAt: 9e12,
            replicas: [],
          },
        ]);
        await store.markDeleted('link-a-kept', 'deleted', Date.now());
        await store.abortUpload('link-a-aborted');
        expect(await store.countLinkUploads('L1')).toBe(2);
        expect(await store.countLinkUploads('L2')).toBe(1);
        expect(await store.countLinkUploads('L3')).toBe(0);
      });
    });

    describe('download grants', () => {
      it('grants while the count stays within max_downloads, hands back first, never below zero', async () => {
        const id = await committed(10_000); // max_downloads 3
        expect(await store.grantDownloads(id, 2, 0)).toEqual({ before: 0, after: 2 });
        expect(await store.grantDownloads(id, 5, 0)).toEqual({ before: 2, after: 3 });
        expect(await store.grantDownloads(id, 1, 0)).toEqual({ before: 3, after: 3 });
        // A slot handed back serves a take of the same batch.
        expect(await store.grantDownloads(id, 1, 1)).toEqual({ before: 3, after: 3 });
        expect(await store.grantDownloads(id, 0, 5)).toEqual({ before: 3, after: 0 });
        expect((await store.getFile(id))?.downloadsUsed).toBe(0);
        expect(await store.grantDownloads('no-such-file', 1, 0)).toBeUndefined();
      });

      it('gives each of many concurrent batches on two connections its own outcome, exactly max in all', async () => {
        const id = await committed(10_000);
        const other = await second();
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 ? other : store).grantDownloads(id, 1, 0)),
        );
        const granted = results.filter((r) => r && r.after > r.before);
        expect(granted).toHaveLength(3);
        // Each grant moved the count one step: no slot granted twice.
        expect(granted.map((r) => r!.after).sort()).toEqual([1, 2, 3]);
        expect((await other.getFile(id))?.downloadsUsed).toBe(3);
      });

      it('keeps batches of different files apart when they share a commit', async () => {
        const a = await committed(10_000);
        const b = await committed(10_000);
        await setUsed(store, b, 3);
        const outcomes = await Promise.all([
          store.grantDownloads(a, 1, 0),
          store.grantDownloads(b, 1, 0),
          store.grantDownloads(a, 1, 0),
        ]);
        expect(outcomes).toEqual([
          { before: 0, after: 1 },
          { before: 3, after: 3 },
          { before: 1, after: 2 },
        ]);
      });
    });

    describe('races between two connections', () => {
      it('lets exactly one of a commit and an abort of the same upload win, and the loser learn it', async () => {
        for (let i = 0; i < 10; i++) {
          const id = `race-commit-${i}`;
          await begin(id);
          const other = await second();
          const [commit, abort] = await Promise.allSettled([
            store.commitUploads([
              { id, size: 1, sha256: 'x', maxDownloads: 3, expiresAt: 10_000, replicas: [] },
            ]),
            other.abortUpload(id),
          ]);
          const committedWon = commit.status === 'fulfilled';
          expect(abort).toEqual({ status: 'fulfilled', value: !committedWon });
          if (!committedWon) expect(commit.reason).toMatchObject({ code: 'UPLOAD_ABORTED' });
          expect((await store.getFile(id))?.state).toBe(committedWon ? 'committed' : 'aborted');
        }
      });

      it('tombstones a file once when two connections delete it together', async () => {
        const id = await committed(1000);
        const other = await second();
        const outcomes = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 ? other : store).markDeleted(id, i % 3 ? 'deleted' : 'expired', 2000 + i),
          ),
        );
        expect(outcomes.filter(Boolean)).toHaveLength(1);
      });

      it('counts every concurrent processing attempt once', async () => {
        const id = await committed(10_000);
        const other = await second();
        const attempts = await Promise.all(
          Array.from({ length: 10 }, (_, i) => (i % 2 ? other : store).beginProcessing(id)),
        );
        expect([...attempts].sort((x, y) => x! - y!)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      });

      it('records variants or finds the file purged, never half of each', async () => {
        const id = await committed(1000);
        await store.markDeleted(id, 'expired', 2000);
        const other = await second();
        const rows = ['node1', 'node2'].map((node) => ({
          key: `${id}.thumb`,
          node,
          state: 'ok' as const,
        }));
        const [recorded, purged] = await Promise.all([
          other.recordVariants(id, [], rows),
          store.purgeTombstones(3000),
        ]);
        expect(purged).toBe(1);
        expect(await store.getFile(id)).toBeUndefined();
        expect(await store.replicasOf(id)).toEqual([]);
        expect(typeof recorded).toBe('boolean');
      });
    });

    describe('resumable uploads', () => {
      const create = (id: string, o: Partial<NewResumable> = {}) =>
        store.createResumable(newResumable(id, o));
      /** Begins part `key` of `uploadId` at `offset`, sent to node1 and node2. */
      const beginPart = (uploadId: string, key: string, offset: number, createdAt = 2) =>
        store.beginPart({ uploadId, key, offset, nodes: ['node1', 'node2'], createdAt });
      /** Stores part `key` (`size` bytes at `offset`) through `on`, stored on node1 and node3. */
      const storePart = (
        uploadId: string,
        key: string,
        offset: number,
        size: number,
        contentType?: string,
        on: MetadataStore = store,
      ) =>
        on.storePart({
          uploadId,
          key,
          offset,
          size,
          sha256: `sha-${key}`,
          nodes: ['node1', 'node3'],
          ...(contentType && { contentType }),
        });
      const offsetOf = async (id: string) => (await store.getResumable(id))?.offset;

      it('keeps an upload as created: uploading at offset 0, its metadata, null type and length', async () => {
        const metadata = { filename: 'photo "1" – ✓.jpg', is_confidential: null };
        await create('r-deferred', { length: null, metadata, uploadLink: 'L1', client: '::1' });
        expect(await store.getResumable('r-deferred')).toEqual({
          ...newResumable('r-deferred', {
            length: null,
            metadata,
            uploadLink: 'L1',
            client: '::1',
          }),
          contentType: null,
          offset: 0,
          state: 'uploading',
          s3: null,
        });
        await create('r-sized');
        expect(await store.getResumable('r-sized')).toMatchObject({
          length: 100,
          uploadLink: null,
          metadata: { filename: 'a.jpg' },
        });
        expect(await store.getResumable('r-unknown')).toBeUndefined();
        // One file id, one upload.
        await expect(create('r-again', { fileId: 'file-r-sized' })).rejects.toThrow();
      });

      it('stores parts in order: each moves the offset once, the first one sets the type', async () => {
        await create('r-parts');
        await beginPart('r-parts', 'p0', 0);
        expect(await store.getPart('p0')).toEqual({
          uploadId: 'r-parts',
          key: 'p0',
          offset: 0,
          size: null,
          sha256: null,
          nodes: ['node1', 'node2'],
          stored: false,
          createdAt: 2,
          partNumber: null,
          md5: null,
        });
        expect(await storePart('r-parts', 'p0', 0, 40, 'image/png')).toBe(true);
        expect(await store.getResumable('r-parts')).toMatchObject({
          offset: 40,
          contentType: 'image/png',
        });
        expect(await store.getPart('p0')).toMatchObject({
          size: 40,
          sha256: 'sha-p0',
          nodes: ['node1', 'node3'],
          stored: true,
        });
        await beginPart('r-parts', 'p40', 40, 3);
        expect(await storePart('r-parts', 'p40', 40, 60, 'image/jpeg')).toBe(true);
        expect(await store.getResumable('r-parts')).toMatchObject({
          offset: 100,
          contentType: 'image/png',
        });
        expect((await store.partsOf('r-parts')).map((p) => [p.key, p.offset, p.size])).toEqual([
          ['p0', 0, 40],
          ['p40', 40, 60],
        ]);
        expect(await store.getPart('no-such-part')).toBeUndefined();
      });

      it('sets no type until a part gives one', async () => {
        await create('r-untyped');
        await beginPart('r-untyped', 'u0', 0);
        expect(await storePart('r-untyped', 'u0', 0, 10)).toBe(true);
        expect((await store.getResumable('r-untyped'))?.contentType).toBeNull();
        await beginPart('r-untyped', 'u10', 10);
        expect(await storePart('r-untyped', 'u10', 10, 10, 'image/gif')).toBe(true);
        expect((await store.getResumable('r-untyped'))?.contentType).toBe('image/gif');
      });

      it('refuses a part at a stale offset, an unknown or stored one, or one of an ended upload', async () => {
        await create('r-refuse');
        await beginPart('r-refuse', 'first', 0);
        await beginPart('r-refuse', 'late', 0, 3);
        expect(await storePart('r-refuse', 'first', 0, 10)).toBe(true);
        // Begun at 0 too, but the offset moved meanwhile.
        expect(await storePart('r-refuse', 'late', 0, 10)).toBe(false);
        // Stored already, asked again (at its offset, or at the upload's).
        expect(await storePart('r-refuse', 'first', 0, 10)).toBe(false);
        expect(await storePart('r-refuse', 'first', 10, 10)).toBe(false);
        // No such part row, or one of another upload.
        expect(await storePart('r-refuse', 'never-begun', 10, 10)).toBe(false);
        await create('r-other');
        await beginPart('r-other', 'other-0', 0);
        expect(await storePart('r-refuse', 'other-0', 10, 10)).toBe(false);
        // A part begun at one offset is not stored at another.
        await beginPart('r-refuse', 'at-20', 20);
        expect(await storePart('r-refuse', 'at-20', 10, 10)).toBe(false);
        // An upload that is no longer uploading.
        await beginPart('r-refuse', 'after-end', 10);
        expect(await store.endResumable('r-refuse', 'terminated')).toBe(true);
        expect(await storePart('r-refuse', 'after-end', 10, 10, 'image/png')).toBe(false);
        expect(await store.getResumable('r-refuse')).toMatchObject({
          offset: 10,
          contentType: null,
        });
        expect(await store.getPart('late')).toMatchObject({ stored: false, size: null });
        expect(await store.getPart('after-end')).toMatchObject({ stored: false });
        expect((await store.getPart('other-0'))?.stored).toBe(false);
        expect(await offsetOf('r-other')).toBe(0);
      });

      it('lists parts by offset, then by creation', async () => {
        await create('r-order');
        await beginPart('r-order', 'k-b', 10, 5);
        await beginPart('r-order', 'k-c', 0, 7);
        await beginPart('r-order', 'k-a', 0, 6);
        expect((await store.partsOf('r-order')).map((p) => p.key)).toEqual(['k-a', 'k-c', 'k-b']);
        expect(await store.partsOf('r-unknown')).toEqual([]);
      });

      it('takes a deferred length once, and only while uploading', async () => {
        await create('r-deferred', { length: null });
        expect(await store.declareResumableLength('r-deferred', 500)).toBe(true);
        expect(await store.declareResumableLength('r-deferred', 600)).toBe(false);
        expect((await store.getResumable('r-deferred'))?.length).toBe(500);
        await create('r-sized');
        expect(await store.declareResumableLength('r-sized', 500)).toBe(false);
        expect((await store.getResumable('r-sized'))?.length).toBe(100);
        await create('r-ended', { length: null });
        await store.endResumable('r-ended', 'terminated');
        expect(await store.declareResumableLength('r-ended', 500)).toBe(false);
        expect((await store.getResumable('r-ended'))?.length).toBeNull();
        expect(await store.declareResumableLength('r-unknown', 500)).toBe(false);
      });

      it("counts a client's live incomplete uploads, a deferred length by its offset", async () => {
        const now = 5000;
        await create('u-sized', { length: 3_000_000_000 }); // past 2^31
        await create('u-deferred', { length: null });
        await beginPart('u-deferred', 'u-deferred-0', 0);
        await storePart('u-deferred', 'u-deferred-0', 0, 30);
        await create('u-expired', { expiresAt: now - 1 });
        await create('u-expires-now', { expiresAt: now });
        await create('u-done');
        await store.endResumable('u-done', 'done');
        await create('u-terminated');
        await store.endResumable('u-terminated', 'terminated');
        await create('u-theirs', { client: '10.0.0.2', length: 7 });
        expect(await store.resumableUsage('10.0.0.1', now)).toEqual({
          uploads: 2,
          bytes: 3_000_000_030,
        });
        expect(await store.resumableUsage('10.0.0.2', now)).toEqual({ uploads: 1, bytes: 7 });
        expect(await store.resumableUsage('10.0.0.9', now)).toEqual({ uploads: 0, bytes: 0 });
      });

      it('ends an upload only while it is uploading', async () => {
        await create('e-done');
        expect(await store.endResumable('e-done', 'done')).toBe(true);
        expect(await store.endResumable('e-done', 'terminated')).toBe(false);
        expect(await store.endResumable('e-done', 'done')).toBe(false);
        expect((await store.getResumable('e-done'))?.state).toBe('done');
        await create('e-terminated');
        expect(await store.endResumable('e-terminated', 'terminated')).toBe(true);
        expect(await store.endResumable('e-terminated', 'done')).toBe(false);
        expect((await store.getResumable('e-terminated'))?.state).toBe('terminated');
        expect(await store.endResumable('e-unknown', 'done')).toBe(false);
      });

      it('lists terminated, expired, and finished uploads with parts left, for the cleanup, oldest first', async () => {
        const now = 5000;
        await create('s-live', { createdAt: 1 });
        await create('s-terminated', { createdAt: 40 });
        await store.endResumable('s-terminated', 'terminated');
        await create('s-done', { createdAt: 30 });
        await store.beginPart({
          uploadId: 's-done',
          key: 's-done.part-0-00000000',
          offset: 0,
          nodes: ['node1'],
          createdAt: 31,
        });
        await store.endResumable('s-done', 'done');
        // Finished and its parts gone: kept (GET /tus/:id answers from it) until it expires.
        await create('s-done-clean', { createdAt: 25 });
        await store.endResumable('s-done-clean', 'done');
        await create('s-expires-now', { createdAt: 20, expiresAt: now });
        await create('s-expired', { createdAt: 10, expiresAt: now - 1000 });
        const ids = (uploads: { id: string }[]) => uploads.map((u) => u.id);
        expect(ids(await store.staleResumables(now, 10))).toEqual([
          's-expired',
          's-expires-now',
          's-done',
          's-terminated',
        ]);
        expect(ids(await store.staleResumables(now, 2))).toEqual(['s-expired', 's-expires-now']);
        expect(ids(await store.staleResumables(0, 10))).toEqual(['s-done', 's-terminated']);
        expect((await store.staleResumables(now, 10))[2]).toMatchObject({ state: 'done' });
      });

      it('forgets a part row, and an upload with the part rows it has left', async () => {
        await create('f-upload');
        await create('f-kept');
        await beginPart('f-upload', 'f-0', 0);
        await storePart('f-upload', 'f-0', 0, 10);
        await beginPart('f-upload', 'f-10', 10);
        await beginPart('f-upload', 'f-stray', 0);
        await beginPart('f-kept', 'f-kept-0', 0);
        await store.forgetPart('f-stray');
        expect(await store.getPart('f-stray')).toBeUndefined();
        expect((await store.partsOf('f-upload')).map((p) => p.key)).toEqual(['f-0', 'f-10']);
        await store.forgetResumable('f-upload');
        expect(await store.getResumable('f-upload')).toBeUndefined();
        expect(await store.partsOf('f-upload')).toEqual([]);
        expect(await store.getPart('f-0')).toBeUndefined();
        expect(await store.getPart('f-10')).toBeUndefined();
        expect((await store.partsOf('f-kept')).map((p) => p.key)).toEqual(['f-kept-0']);
        // Its file id is free again.
        await create('f-again', { fileId: 'file-f-upload' });
        await store.forgetResumable('f-unknown');
      });

      it('lets exactly one of two connections store a part at the same offset, and moves it once', async () => {
        const other = await second();
        for (let i = 0; i < 10; i++) {
          const id = `race-part-${i}`;
          await create(id);
          await beginPart(id, `${id}-0`, 0);
          await storePart(id, `${id}-0`, 0, 10);
          await beginPart(id, `${id}-a`, 10);
          await beginPart(id, `${id}-b`, 10);
          const outcomes = await Promise.all([
            storePart(id, `${id}-a`, 10, 20, undefined, store),
            storePart(id, `${id}-b`, 10, 30, undefined, other),
          ]);
          expect(outcomes.filter(Boolean)).toHaveLength(1);
          const stored = (await other.partsOf(id)).filter((p) => p.stored).map((p) => p.key);
          expect(stored).toEqual([`${id}-0`, outcomes[0] ? `${id}-a` : `${id}-b`]);
          expect(await offsetOf(id)).toBe(outcomes[0] ? 30 : 40);
        }
      });
    });

    describe('layouts', () => {
      it('starts without one, saves version 1 first, then only ever the next version', async () => {
        expect(await store.currentLayout()).toBeUndefined();
        expect(await store.layoutHistory(5)).toEqual([]);
        expect(await store.saveLayout(sampleLayout(0))).toBe(false);
        expect(await store.saveLayout(sampleLayout(2))).toBe(false);
        expect(await store.saveLayout(sampleLayout(1))).toBe(true);
        expect(await store.saveLayout(sampleLayout(1, 'again'))).toBe(false);
        expect(await store.saveLayout(sampleLayout(3))).toBe(false);
        expect(await store.saveLayout(sampleLayout(2))).toBe(true);
        expect(await store.currentLayout()).toEqual(sampleLayout(2));
        expect(await store.layoutHistory(5)).toEqual([sampleLayout(2), sampleLayout(1)]);
        expect(await store.layoutHistory(1)).toEqual([sampleLayout(2)]);
      });

      it('keeps zones, fractional weights, roles and the note as saved, for every connection', async () => {
        const layout = { ...sampleLayout(1), note: 'add node3 "rack 2" – zone b ✓\nsecond line' };
        expect(await store.saveLayout(layout)).toBe(true);
        const other = await second();
        expect(await other.currentLayout()).toEqual(layout);
        expect((await other.currentLayout())!.nodes[1]!.weight).toBe(2.5);
      });

      it('refuses nodes it could not read back, and saves nothing', async () => {
        const twice = sampleLayout(1);
        twice.nodes.push({ ...twice.nodes[0]!, url: 'http://10.0.0.9:9001' });
        await expect(store.saveLayout(twice)).rejects.toThrow(/node "node1" appears twice/);
        expect(await store.currentLayout()).toBeUndefined();
      });

      it('lets exactly one of two connections save the same version, and the other learn it', async () => {
        const other = await second();
        for (let version = 1; version <= 5; version++) {
          const [mine, theirs] = await Promise.all([
            store.saveLayout(sampleLayout(version, `mine ${version}`)),
            other.saveLayout(sampleLayout(version, `theirs ${version}`)),
          ]);
          expect([mine, theirs].filter(Boolean)).toHaveLength(1);
          expect((await other.currentLayout())?.note).toBe(
            mine ? `mine ${version}` : `theirs ${version}`,
          );
        }
        expect((await store.layoutHistory(10)).map((l) => l.version)).toEqual([5, 4, 3, 2, 1]);
      });
    });

    describe('replica rows for the rebalance', () => {
      /** Upload `id` committed with one `ok` row per node. */
      async function commitFile(id: string, nodes = ['node1', 'node2', 'node3']) {
        await begin(id);
        await store.commitUploads([
          {
            id,
            size: 10,
            sha256: `sha-${id}`,
            maxDownloads: 3,
            expiresAt: 10_000,
            replicas: nodes.map((node) => ({ key: id, node, state: 'ok' as const })),
          },
        ]);
      }
      const variant = (name: 'thumb' | 'compressed', size: number) => ({
        variant: name,
        size,
        width: 1,
        height: 1,
        contentType: 'image/webp',
        sha256: `sha-${name}`,
        createdAt: 5,
      });
      const row = (key: string, node: string, state: ReplicaState = 'ok') => ({ key, node, state });

      it('counts the replica rows on a node, of any file in any state', async () => {
        await commitFile('count-live', ['node1', 'node2']);
        await commitFile('count-gone', ['node1', 'node4']);
        await store.markDeleted('count-gone', 'deleted', 5);
        await store.completeProcessing(
          'count-live',
          [variant('thumb', 3)],
          [row('count-live.thumb', 'node1', 'missing')],
        );
        expect(await store.replicaCountOnNode('node1')).toBe(3);
        expect(await store.replicaCountOnNode('node4')).toBe(1);
        expect(await store.replicaCountOnNode('node9')).toBe(0);
        await store.forgetReplica('count-gone', 'node4');
        expect(await store.replicaCountOnNode('node4')).toBe(0);
      });

      it('adds a row for a live committed file once, and leaves an existing row as it is', async () => {
        await commitFile('add-live', ['node1']);
        expect(await store.addReplica('add-live', 'add-live', 'node4', 'missing')).toBe(true);
        const [added] = (await store.replicasOf('add-live')).filter((r) => r.node === 'node4');
        expect(added).toMatchObject({ key: 'add-live', fileId: 'add-live', state: 'missing' });
        await new Promise((r) => setTimeout(r, 2));
        // Already there: true, and neither its state nor its time changes.
        expect(await store.addReplica('add-live', 'add-live', 'node4', 'ok')).toBe(true);
        expect(await store.addReplica('add-live', 'add-live', 'node1', 'corrupt')).toBe(true);
        expect(await store.replicasOf('add-live')).toEqual([
          expect.objectContaining({ node: 'node1', state: 'ok' }),
          added,
        ]);
        // A variant's blob is the file's too.
        expect(await store.addReplica('add-live', 'add-live.thumb', 'node4', 'ok')).toBe(true);
        expect(await store.replicaCountOnNode('node4')).toBe(2);
      });

      it('adds nothing for a tombstone, a pending or aborted upload, or an unknown file', async () => {
        await commitFile('add-gone', ['node1']);
        await store.markDeleted('add-gone', 'expired', 5);
        await begin('add-pending');
        await begin('add-aborted');
        await store.abortUpload('add-aborted');
        for (const id of ['add-gone', 'add-pending', 'add-aborted', 'add-unknown']) {
          expect(await store.addReplica(id, id, 'node4', 'ok'), id).toBe(false);
        }
        // An existing row of a tombstone: not live, so false too, and the row stays as it was.
        expect(await store.addReplica('add-gone', 'add-gone', 'node1', 'missing')).toBe(false);
        expect(await store.replicaCountOnNode('node4')).toBe(0);
        expect(await store.replicasOf('add-gone')).toEqual([
          expect.objectContaining({ node: 'node1', state: 'ok' }),
        ]);
      });

      it('adds a row before a concurrent delete (the tombstone owns it) or not at all', async () => {
        const other = await second();
        for (let i = 0; i < 10; i++) {
          const id = `add-race-${i}`;
          await commitFile(id, ['node1']);
          const [added, deleted] = await Promise.all([
            store.addReplica(id, id, 'node4', 'ok'),
            other.markDeleted(id, 'deleted', 5),
          ]);
          expect(deleted).toBe(true);
          const onNode4 = (await store.replicasOf(id)).filter((r) => r.node === 'node4');
          expect(onNode4).toHaveLength(added ? 1 : 0);
        }
      });

      it('answers true on both connections when they add the same row together', async () => {
        await commitFile('add-twice', ['node1']);
        const other = await second();
        const outcomes = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 ? other : store).addReplica('add-twice', 'add-twice', 'node4', 'ok'),
          ),
        );
        expect(outcomes).toEqual([true, true, true, true, true, true]);
        expect(await store.replicaCountOnNode('node4')).toBe(1);
      });

      it('pages the live committed files in id order, each with its blobs and every row', async () => {
        await commitFile('pl-a', ['node1', 'node2']);
        await store.setReplicaState('pl-a', 'node2', 'corrupt');
        await store.completeProcessing(
          'pl-a',
          [variant('thumb', 3), variant('compressed', 7)],
          [row('pl-a.thumb', 'node1'), row('pl-a.compressed', 'node3', 'missing')],
        );
        await commitFile('pl-b', []);
        await commitFile('pl-c-gone');
        await store.markDeleted('pl-c-gone', 'deleted', 5);
        await begin('pl-d-pending');
        await begin('pl-e-aborted');
        await store.abortUpload('pl-e-aborted');
        await commitFile('pl-f', ['node3']);

        const first = await store.placementPage(undefined, 2);
        expect(first.map((f) => f.id)).toEqual(['pl-a', 'pl-b']);
        expect(first[0]!.blobs).toEqual([
          { key: 'pl-a', sha256: 'sha-pl-a', size: 10 },
          { key: 'pl-a.compressed', sha256: 'sha-compressed', size: 7 },
          { key: 'pl-a.thumb', sha256: 'sha-thumb', size: 3 },
        ]);
        expect(first[0]!.replicas.map((r) => [r.key, r.fileId, r.node, r.state])).toEqual([
          ['pl-a', 'pl-a', 'node1', 'ok'],
          ['pl-a', 'pl-a', 'node2', 'corrupt'],
          ['pl-a.compressed', 'pl-a', 'node3', 'missing'],
          ['pl-a.thumb', 'pl-a', 'node1', 'ok'],
        ]);
        expect(first[1]).toEqual({
          id: 'pl-b',
          blobs: [{ key: 'pl-b', sha256: 'sha-pl-b', size: 10 }],
          replicas: [],
        });
        const next = await store.placementPage('pl-b', 2);
        expect(next.map((f) => [f.id, f.replicas.map((r) => r.node)])).toEqual([
          ['pl-f', ['node3']],
        ]);
        expect(await store.placementPage('pl-f', 2)).toEqual([]);
        expect((await store.placementPage(undefined, 10)).map((f) => f.id)).toEqual([
          'pl-a',
          'pl-b',
          'pl-f',
        ]);
      });
    });

    describe('repairs', () => {
      it('lists the unhealthy replicas of live files only, oldest first, and every row of a node', async () => {
        const live = await committed(10_000);
        const gone = await committed(10_000);
        await store.setReplicaState(live, 'node2', 'missing');
        await store.setReplicaState(gone, 'node1', 'corrupt');
        await store.markDeleted(gone, 'deleted', 5);
        expect((await store.unhealthyReplicas(10)).map((r) => [r.key, r.node, r.state])).toEqual([
          [live, 'node2', 'missing'],
        ]);
        expect(await store.counts(3)).toEqual({ objects: 1, underReplicated: 1 });
        const onNode1 = await store.replicasOnNode('node1');
        expect(onNode1.map((r) => [r.key, r.live, r.fileSha256]).sort()).toEqual(
          [
            [gone, false, 'x'],
            [live, true, 'x'],
          ].sort(),
        );
        await store.setReplicaState(live, 'node2', 'ok');
        expect(await store.unhealthyReplicas(10)).toEqual([]);
        await store.forgetReplica(live, 'node3');
        expect((await store.replicasOf(live)).map((r) => r.node)).toEqual(['node1', 'node2']);
        expect(await store.counts(3)).toEqual({ objects: 1, underReplicated: 1 });
      });

      it('changes a replica state only if the row is still as seen, when asked to', async () => {
        const id = await committed(10_000);
        const [seen] = (await store.replicasOf(id)).filter((r) => r.node === 'node1');
        await new Promise((r) => setTimeout(r, 2));
        // Changed since it was seen (missing, then repaired: `ok` again, but later).
        expect(await store.setReplicaState(id, 'node1', 'missing')).toBe(true);
        await new Promise((r) => setTimeout(r, 2));
        expect(await store.setReplicaState(id, 'node1', 'ok')).toBe(true);
        expect(await store.setReplicaState(id, 'node1', 'missing', seen)).toBe(false);
        const [now] = (await store.replicasOf(id)).filter((r) => r.node === 'node1');
        expect(now!.state).toBe('ok');
        expect(await store.setReplicaState(id, 'node1', 'corrupt', now)).toBe(true);
        expect((await store.replicasOf(id)).find((r) => r.node === 'node1')!.state).toBe('corrupt');
        expect(await store.setReplicaState(id, 'node9', 'ok')).toBe(false);
      });

      it('finds uploads to clean up: aborted ones, its own from before a restart, and stale ones', async () => {
        await begin('ab-aborted', { createdAt: 50 });
        await store.abortUpload('ab-aborted');
        await begin('ab-mine-old', { createdAt: 10, owner: 'gw' });
        await begin('ab-mine-new', { createdAt: 200, owner: 'gw' });
        await begin('ab-theirs-old', { createdAt: 20, owner: 'other' });
        await begin('ab-theirs-stale', { createdAt: 1, owner: 'other' });
        const found = await store.abandonedUploads({
          owner: 'gw',
          ownerSince: 100,
          staleBefore: 5,
          limit: 10,
        });
        expect(found.map((f) => f.id)).toEqual(['ab-theirs-stale', 'ab-mine-old', 'ab-aborted']);
        await store.forgetUpload('ab-aborted');
        expect(await store.getFile('ab-aborted')).toBeUndefined();
        expect(await store.ping()).toBe(true);
      });
    });
  });
}

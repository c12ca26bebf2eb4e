/**
 * Download limits against real processes, real Redis and real Redlock:
 * exactly `max_downloads` GETs are served across two gateways under heavy
 * concurrency; counts survive Redis losing them and a gateway restart; a GET no
 * replica can serve gives its download back; HEAD and metadata never count.
 */
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { lockKey } from '../gateway/download/download-counter.js';
import { fixture, METADATA_KINDS, sha256, startCluster, waitFor, type Cluster } from './harness.js';
import { skipWithout } from './required-tools.js';
import { strace, traceSyscalls } from './strace.js';

const noStrace = skipWithout('strace', strace, 'apt-get install strace');

let cluster: Cluster;
let second: string;
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
afterAll(() => redis.disconnect());

describe.each(METADATA_KINDS)('with %s metadata', (metadata) => {
  beforeAll(async () => {
    cluster = await startCluster({ metadata });
    second = await cluster.startGateway('gateway2');
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  /**
   * What a Redis restart without persistence does to this cluster: its keys
   * (locks, node health, rate limits) are gone. Scoped, not FLUSHALL: the Redis may be
   * shared with other clusters (a developer's own, running beside the tests).
   */
  async function loseRedisState(fileId: string): Promise<void> {
    const keys = await redis.keys(`${cluster.clusterName}:*`);
    await redis.del(lockKey(fileId), ...keys);
  }

  function showLogsOnFailure() {
    onTestFailed(() => console.log(cluster.logTail()));
  }

  let seq = 0;
  async function upload(query: string): Promise<{ id: string; sha256: string }> {
    const data = Buffer.concat([
      fixture('photo.jpg'),
      Buffer.from(`limits-${seq++}-${Date.now()}`),
    ]);
    const res = await fetch(`${cluster.gatewayUrl}/upload/p.jpg?${query}`, {
      method: 'PUT',
      body: data,
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string };
    return { id: body.id, sha256: sha256(data) };
  }

  async function get(base: string, id: string) {
    const res = await fetch(`${base}/download/${id}`);
    const data = Buffer.from(await res.arrayBuffer());
    return {
      status: res.status,
      left: res.headers.get('x-downloads-left'),
      retryAfter: res.headers.get('retry-after'),
      data,
    };
  }

  const usedInDb = async (id: string) =>
    (
      await cluster.query<{ n: number }>(`SELECT downloads_used AS n FROM files WHERE id = '${id}'`)
    )[0]!.n;

  describe('download limits', () => {
    it('serves exactly max_downloads of 200 concurrent GETs across two gateways', async () => {
      showLogsOnFailure();
      const file = await upload('max_downloads=5');
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => get(i % 2 ? second : cluster.gatewayUrl, file.id)),
      );
      const served = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status === 410);
      expect(served).toHaveLength(5);
      expect(refused).toHaveLength(195);
      for (const r of served) expect(sha256(r.data)).toBe(file.sha256);
      // Each served GET saw a different count: no slot was handed out twice.
      expect(served.map((r) => r.left).sort()).toEqual(['0', '1', '2', '3', '4']);
      expect(JSON.parse(refused[0]!.data.toString()).error.code).toBe('DOWNLOAD_LIMIT_REACHED');
      expect(refused[0]!.left).toBe('0');
      expect(await usedInDb(file.id)).toBe(5);

      const meta = (await (await fetch(`${second}/files/${file.id}`)).json()) as any;
      expect(meta).toMatchObject({ status: 'exhausted', downloads_used: 5, downloads_left: 0 });
    });

    it('keeps counting where it was after Redis loses everything, and after a gateway restart', async () => {
      showLogsOnFailure();
      const file = await upload('max_downloads=4');
      expect((await get(cluster.gatewayUrl, file.id)).left).toBe('3');
      expect((await get(second, file.id)).left).toBe('2');

      await loseRedisState(file.id);
      expect(await get(cluster.gatewayUrl, file.id)).toMatchObject({ status: 200, left: '1' });

      await cluster.kill('gateway', 'SIGKILL');
      await loseRedisState(file.id);
      await cluster.startGateway();
      expect(await get(cluster.gatewayUrl, file.id)).toMatchObject({ status: 200, left: '0' });
      expect((await get(second, file.id)).status).toBe(410);
      expect(await usedInDb(file.id)).toBe(4);
    });

    type Got = Awaited<ReturnType<typeof get>>;

    /** Starts a GET of `id` through the main gateway; resolves once that gateway holds the file's lock. */
    async function getHoldingLock(id: string): Promise<{ got: Promise<Got> }> {
      const got = get(cluster.gatewayUrl, id);
      await waitFor(
        'the gateway to hold the file lock',
        async () => (await redis.exists(lockKey(id))) === 1,
      );
      return { got };
    }

    /**
     * A lock holder that stalls past its TTL: `freeze` leaves the main gateway
     * SIGSTOPped in the middle of a grant of `id`, holding the file's lock (its
     * GET is what `freeze` returns). The lock expires, the second gateway takes
     * the file's downloads, the frozen gateway wakes, and Redis loses its state
     * (a restart); then three more GETs. What each GET got.
     */
    async function stallPastTtl(id: string, freeze: () => Promise<{ got: Promise<Got> }>) {
      const gateway = cluster.gateway!.proc;
      const stalled = await freeze();
      const others: Got[] = [];
      try {
        await waitFor(
          'the stalled lock to expire',
          async () => (await redis.exists(lockKey(id))) === 0,
        );
        for (let i = 0; i < 4; i++) others.push(await get(second, id));
      } finally {
        gateway.kill('SIGCONT');
      }
      const late = await stalled.got;
      await loseRedisState(id);
      const after: Got[] = [];
      for (let i = 0; i < 3; i++) after.push(await get(i % 2 ? second : cluster.gatewayUrl, id));
      return { others, late, after, all: [...others, late, ...after] };
    }

    it.skipIf(metadata !== 'postgres')(
      'never grants more than max_downloads when a SIGSTOPped lock holder wakes past its TTL',
      async () => {
        showLogsOnFailure();
        const file = await upload('max_downloads=3');
        const { after, all } = await stallPastTtl(file.id, async () => {
          // Another client holds the file's row: the gateway's grant waits in PostgreSQL while
          // it holds the file's Redis lock; the gateway is frozen, then the row let go.
          const db = new pg.Client({ connectionString: cluster.databaseUrl });
          await db.connect();
          try {
            await db.query('BEGIN');
            await db.query('SELECT 1 FROM files WHERE id = $1 FOR UPDATE', [file.id]);
            const stalled = await getHoldingLock(file.id);
            cluster.gateway!.proc.kill('SIGSTOP');
            await db.query('ROLLBACK');
            return stalled;
          } finally {
            await db.end();
          }
        });
        // The database settled the frozen holder's grant and the others' in turn: 3 in all.
        expect(all.filter((r) => r.status === 200)).toHaveLength(3);
        expect(after.map((r) => r.status)).toEqual([410, 410, 410]);
        expect(await usedInDb(file.id)).toBe(3);
      },
    );

    it.skipIf(metadata !== 'sqlite')(
      'never grants more than max_downloads after a lock holder stalls past its TTL and Redis loses its state',
      async () => {
        showLogsOnFailure();
        const file = await upload('max_downloads=3');
        const { others, late, all } = await stallPastTtl(file.id, async () => {
          // Another process holds SQLite's write lock, so the gateway blocks (its whole event loop:
          // better-sqlite3 is synchronous) in the store write of its critical section, holding the lock.
          const db = new Database(cluster.dbPath);
          db.prepare('BEGIN IMMEDIATE').run();
          try {
            const stalled = await getHoldingLock(file.id);
            await waitFor('the gateway to block in its store write', async () => {
              const health = await fetch(`${cluster.gatewayUrl}/health`, {
                signal: AbortSignal.timeout(300),
              }).catch(() => undefined);
              return health === undefined;
            });
            cluster.gateway!.proc.kill('SIGSTOP');
            return stalled;
          } finally {
            db.prepare('ROLLBACK').run();
            db.close();
          }
        });
        expect(all.filter((r) => r.status === 200)).toHaveLength(3);
        // The stalled holder learnt it lost: its conditional write found no download left.
        expect(others.map((r) => r.status)).toEqual([200, 200, 200, 410]);
        expect(late.status).toBe(410);
        expect(await usedInDb(file.id)).toBe(3);
      },
    );

    it.skipIf(noStrace || metadata !== 'sqlite')(
      'has the count that grants a download on disk before the first byte goes out',
      async () => {
        const file = await upload('max_downloads=3');
        const { result, lines } = await traceSyscalls(
          cluster.gateway!.proc.pid!,
          'fsync,fdatasync,write,writev',
          () => get(cluster.gatewayUrl, file.id),
        );
        expect(result.status).toBe(200);
        const synced = lines.findIndex((l) => /f(data)?sync\(\d+<[^>]*trove\.db-wal>\)/.test(l));
        const answered = lines.findIndex((l) => l.includes('HTTP/1.1 200'));
        expect(answered, lines.join('\n')).toBeGreaterThan(-1);
        // A power cut after the answer cannot bring the download back (Redis keeps nothing on disk).
        expect(synced, lines.join('\n')).toBeGreaterThan(-1);
        expect(synced).toBeLessThan(answered);
      },
    );

    it('never counts HEAD, metadata reads or 304s', async () => {
      const file = await upload('max_downloads=1');
      const head = await fetch(`${cluster.gatewayUrl}/download/${file.id}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('x-downloads-left')).toBe('1');
      await fetch(`${cluster.gatewayUrl}/files/${file.id}`);
      const notModified = await fetch(`${cluster.gatewayUrl}/download/${file.id}`, {
        headers: { 'if-none-match': `"${file.sha256}"` },
      });
      expect(notModified.status).toBe(304);
      expect(await usedInDb(file.id)).toBe(0);
      expect(await get(cluster.gatewayUrl, file.id)).toMatchObject({ status: 200, left: '0' });
    });

    it('gives the download back when no replica can serve it', async () => {
      showLogsOnFailure();
      const file = await upload('max_downloads=2');
      for (const node of cluster.nodes) await cluster.kill(node.id, 'SIGKILL');
      try {
        const failed = await get(cluster.gatewayUrl, file.id);
        expect(failed.status).toBe(503);
        expect(failed.retryAfter).toBe('2');
        expect(JSON.parse(failed.data.toString()).error.code).toBe('NO_REPLICA_AVAILABLE');
        expect(await usedInDb(file.id)).toBe(0);
      } finally {
        for (const node of cluster.nodes) await cluster.startNode(node.id);
      }
      expect(await get(cluster.gatewayUrl, file.id)).toMatchObject({ status: 200, left: '1' });
    });

    it('marks unlimited files as such and never locks them', async () => {
      const file = await upload('max_downloads=0');
      for (let i = 0; i < 5; i++) {
        expect(await get(second, file.id)).toMatchObject({ status: 200, left: 'unlimited' });
      }
      expect(await usedInDb(file.id)).toBe(0);
    });

    it('refuses nonsense limits with 400 naming the option', async () => {
      for (const bad of ['-1', 'abc', '1.5', '99999999999999999999']) {
        const res = await fetch(`${cluster.gatewayUrl}/upload/p.jpg?max_downloads=${bad}`, {
          method: 'PUT',
          body: fixture('photo.jpg'),
        });
        expect(res.status, bad).toBe(400);
        expect(((await res.json()) as any).error.message).toContain('max_downloads');
      }
    });
  });
});

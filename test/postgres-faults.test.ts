/**
 * PostgreSQL failing under a running cluster, for real:
 *
 * - every connection of the gateway and the worker terminated
 *   (`pg_terminate_backend`) again and again while uploads and counted
 *   downloads stream through: each answer is a success or a 503 JSON error
 *   with Retry-After (never a 500, never a hang), nothing is left half done
 *   (an answered upload is committed with its replica rows and downloadable;
 *   a file's count is exactly the downloads served, never above its limit),
 *   and the gateway serves on afterwards;
 * - a private server (test/private-postgres.ts; the machine's shared one
 *   serves other test files) stopped: uploads and downloads answer 503,
 *   /ready says not ready; started again: the gateway and the worker carry
 *   on by themselves, no Trove process restarted.
 *
 * A gateway frozen (SIGSTOP) while holding a download lock is in
 * test/download-limits.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { fixture, sha256, startCluster, waitFor, type Cluster } from './harness.js';
import { PG_ADMIN_URL, queryPg } from './postgres.js';
import {
  canRunPrivatePostgres,
  startPrivatePostgres,
  type PrivatePostgres,
} from './private-postgres.js';

interface Answer {
  status: number;
  code?: string;
  retryAfter: string | null;
  /** The body of a 201 upload or a 200 download. */
  body?: Buffer;
  /** The fetch itself failed (a reset, a timeout: a hang). */
  failure?: string;
}

/** One request, its answer read whole; no answer within 15 s counts as a hang. */
async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
    const body = Buffer.from(await res.arrayBuffer());
    const retryAfter = res.headers.get('retry-after');
    if (res.ok) return { status: res.status, retryAfter, body };
    let code: string | undefined;
    try {
      code = (JSON.parse(body.toString()) as { error: { code: string } }).error.code;
    } catch {
      code = undefined; // not JSON: the assertion on `code` reports it
    }
    return { status: res.status, code, retryAfter };
  } catch (err) {
    return { status: 0, retryAfter: null, failure: (err as Error).message };
  }
}

let seq = 0;
function photo(): Buffer {
  return Buffer.concat([fixture('photo.jpg'), Buffer.from(`pg-faults-${seq++}-${Date.now()}`)]);
}

async function upload(cluster: Cluster, data: Buffer, query = ''): Promise<Answer> {
  return call(`${cluster.gatewayUrl}/upload/p.jpg?${query}`, { method: 'PUT', body: data });
}

const idOf = (a: Answer) => (JSON.parse(a.body!.toString()) as { id: string }).id;

/** A 503 as a client must be able to act on it: JSON with a code, and when to try again. */
function expectCleanUnavailable(a: Answer, what: string): void {
  expect(a.code, `${what}: a 503 without a JSON error code`).toMatch(/^[A-Z_]+$/);
  expect(a.retryAfter, `${what}: a 503 without Retry-After`).toBe('2');
}

/** Neither the gateway nor the worker exited or logged an unhandled error. */
function expectNoCrash(cluster: Cluster): void {
  for (const name of ['gateway', 'worker']) {
    expect(cluster.proc(name)!.proc.exitCode, `${name} exited`).toBeNull();
    expect(
      cluster.errorLines(name).filter((l) => l.includes('unhandled')),
      name,
    ).toEqual([]);
  }
}

describe('PostgreSQL connections terminated under load', () => {
  let cluster: Cluster;
  let dbName: string;

  beforeAll(async () => {
    cluster = await startCluster({ metadata: 'postgres', worker: true });
    dbName = new URL(cluster.databaseUrl!).pathname.slice(1);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  /** Terminates every session on the cluster's database (the gateway's and the worker's); how many. */
  async function terminateAll(): Promise<number> {
    const rows = await queryPg<{ ok: boolean }>(
      PG_ADMIN_URL,
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
       WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [dbName],
    );
    return rows.filter((r) => r.ok).length;
  }

  it('answers every request with a success or a 503 with Retry-After, and leaves nothing half done', async () => {
    onTestFailed(() => console.log(cluster.logTail(80)));
    // Counted files, uploaded before the faults: their downloads run through the counter.
    const MAX = 50;
    const limited: { id: string; sha256: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const data = photo();
      const up = await upload(cluster, data, `max_downloads=${MAX}`);
      expect(up.status).toBe(201);
      limited.push({ id: idOf(up), sha256: sha256(data) });
    }

    const uploads: { answer: Answer; sha256: string }[] = [];
    const downloads: { id: string; answer: Answer }[] = [];
    let stopping = false;
    let terminated = 0;
    let rounds = 0;
    const killer = (async () => {
      while (!stopping) {
        terminated += await terminateAll();
        rounds++;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
      }
    })();
    const uploaders = Array.from({ length: 4 }, async () => {
      while (!stopping) {
        const data = photo();
        uploads.push({ answer: await upload(cluster, data), sha256: sha256(data) });
      }
    });
    const downloaders = Array.from({ length: 6 }, async () => {
      while (!stopping) {
        const file = limited[Math.floor(Math.random() * limited.length)]!;
        downloads.push({
          id: file.id,
          answer: await call(`${cluster.gatewayUrl}/download/${file.id}`),
        });
      }
    });
    await new Promise((r) => setTimeout(r, 8000));
    stopping = true;
    await Promise.all([killer, ...uploaders, ...downloaders]);

    // Every answer: a success, a limit reached, or a clean 503; none failed outright.
    const all = [
      ...uploads.map((u) => ['upload', u.answer] as const),
      ...downloads.map((d) => ['download', d.answer] as const),
    ];
    for (const [what, a] of all) {
      expect(a.failure, `${what} got no answer`).toBeUndefined();
      expect([200, 201, 410, 503], `${what}: ${a.status} ${a.code}`).toContain(a.status);
      if (a.status === 503) expectCleanUnavailable(a, what);
      if (a.status === 410) expect(a.code).toBe('DOWNLOAD_LIMIT_REACHED');
    }
    const statuses = (list: Answer[]) =>
      list.reduce<Record<number, number>>(
        (n, a) => ({ ...n, [a.status]: (n[a.status] ?? 0) + 1 }),
        {},
      );
    console.log(
      `terminated ${terminated} sessions in ${rounds} rounds; uploads`,
      statuses(uploads.map((u) => u.answer)),
      'downloads',
      statuses(downloads.map((d) => d.answer)),
    );
    // The faults bit, and requests got through between them.
    expect(terminated).toBeGreaterThan(0);
    expect(all.some(([, a]) => a.status === 503)).toBe(true);
    expect(uploads.some((u) => u.answer.status === 201)).toBe(true);
    expect(downloads.some((d) => d.answer.status === 200)).toBe(true);

    // The gateway's pool reconnected: it serves on.
    const after = photo();
    const up = await upload(cluster, after);
    expect(up.status).toBe(201);
    const back = await call(`${cluster.gatewayUrl}/download/${idOf(up)}`);
    expect(back.status).toBe(200);
    expect(sha256(back.body!)).toBe(sha256(after));

    // Every upload answered 201 is committed, with its replica rows, and downloadable.
    for (const u of uploads.filter((x) => x.answer.status === 201)) {
      const id = idOf(u.answer);
      const [row] = await cluster.query<{ state: string; replicas: number }>(
        `SELECT state, (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.key = f.id)::int AS replicas
         FROM files f WHERE id = '${id}'`,
      );
      expect(row, id).toMatchObject({ state: 'committed' });
      expect(row!.replicas, id).toBeGreaterThanOrEqual(2);
      const got = await call(`${cluster.gatewayUrl}/download/${id}`);
      expect(got.status, id).toBe(200);
      expect(sha256(got.body!)).toBe(u.sha256);
    }
    // No committed file anywhere without its replica rows (a 503 upload may have committed: whole).
    const bare = await cluster.query<{ id: string }>(
      `SELECT id FROM files f WHERE state = 'committed'
         AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = f.id AND r.key = f.id)`,
    );
    expect(bare).toEqual([]);
    // Each counted file: used exactly as often as it was served, never beyond its limit.
    for (const file of limited) {
      const served = downloads.filter((d) => d.id === file.id && d.answer.status === 200);
      for (const d of served) expect(sha256(d.answer.body!)).toBe(file.sha256);
      const [row] = await cluster.query<{ used: number; max: number }>(
        `SELECT downloads_used AS used, max_downloads AS max FROM files WHERE id = '${file.id}'`,
      );
      expect(row!.used, file.id).toBeLessThanOrEqual(row!.max);
      expect(row!.used, file.id).toBe(served.length);
    }
    expectNoCrash(cluster);
  });
});

const noPrivateServer = !canRunPrivatePostgres();

describe.skipIf(noPrivateServer)('PostgreSQL stopped and started again', () => {
  let server: PrivatePostgres;
  let cluster: Cluster;

  beforeAll(async () => {
    server = await startPrivatePostgres();
    const databaseUrl = await server.createDatabase('trove_restart');
    cluster = await startCluster({ databaseUrl, worker: true });
  });
  afterAll(async () => {
    await cluster?.stop();
    await server?.destroy();
  });

  const fileInfo = async (id: string) =>
    (await (await fetch(`${cluster.gatewayUrl}/files/${id}`)).json()) as {
      status: string;
      processing: { state: string };
    };

  it('answers 503 while the server is down, and the gateway and worker carry on once it is back', async () => {
    onTestFailed(() => console.log(cluster.logTail(80)));
    const before = photo();
    const first = await upload(cluster, before);
    expect(first.status).toBe(201);
    const firstId = idOf(first);
    await waitFor('the first image processed', async () => {
      return (await fileInfo(firstId)).processing.state === 'done';
    });

    await server.stop('SIGINT'); // a fast shutdown: every session terminated
    const refused = await upload(cluster, photo());
    expect(refused.status).toBe(503);
    expect(refused.code).toBe('DATABASE_UNAVAILABLE');
    expectCleanUnavailable(refused, 'upload');
    const download = await call(`${cluster.gatewayUrl}/download/${firstId}`);
    expect(download.status).toBe(503);
    expectCleanUnavailable(download, 'download');
    const ready = await fetch(`${cluster.gatewayUrl}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, metadata: false });
    // Long enough for the worker's sweeps (every 2 s) to fail against the dead server.
    await new Promise((r) => setTimeout(r, 4000));
    expect((await upload(cluster, photo())).status).toBe(503);

    await server.start();
    await waitFor('/ready again', async () => (await fetch(`${cluster.gatewayUrl}/ready`)).ok);
    const again = photo();
    const up = await upload(cluster, again);
    expect(up.status).toBe(201);
    const id = idOf(up);
    const got = await call(`${cluster.gatewayUrl}/download/${id}`);
    expect(got.status).toBe(200);
    expect(sha256(got.body!)).toBe(sha256(again));
    expect((await call(`${cluster.gatewayUrl}/download/${firstId}`)).status).toBe(200);
    // The worker: it processes the new image, and expires a file whose time is up.
    await waitFor('the new image processed', async () => {
      return (await fileInfo(id)).processing.state === 'done';
    });
    const brief = await upload(cluster, photo(), 'ttl=1');
    expect(brief.status).toBe(201);
    const briefId = idOf(brief);
    await waitFor(
      'the expired file deleted by the worker',
      async () => (await fileInfo(briefId)).status === 'deleted',
    );

    expectNoCrash(cluster);
  });
});

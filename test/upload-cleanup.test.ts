/**
 * The cleanup of uploads that will never commit must never touch one that did,
 * and a failed upload leaves nothing behind on the gateway either.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { queryDb, sha256, startCluster, waitFor, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  // Replay copies in spool files only, so the spool-file test below has a file to leave behind.
  cluster = await startCluster({ env: { UPLOAD_SPOOL_MEMORY: '0' } });
});
afterAll(async () => {
  await cluster?.stop();
});

/** A raw upload whose body the test sends piece by piece; `answer` settles with the response. */
function slowUpload(url: string, name: string) {
  const req: ClientRequest = request(`${url}/upload/${name}`, { method: 'PUT' });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (body += s));
      res.once('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.once('error', reject);
  });
  return { req, answer };
}

function writable(cluster: Cluster): Database.Database {
  const db = new Database(cluster.dbPath);
  db.pragma('busy_timeout = 10000');
  return db;
}

const pendingIds = () =>
  queryDb<{ id: string }>(cluster, `SELECT id FROM files WHERE state = 'pending'`).map((r) => r.id);

describe('upload cleanup', () => {
  it('keeps an upload that committed while a cleanup pass had it listed as abandoned', async () => {
    onTestFailed(() => console.log(cluster.logTail(30)));
    const head = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(64 * 1024)]);
    const rest = randomBytes(64 * 1024);
    const upload = slowUpload(cluster.gatewayUrl, 'race.jpg');
    upload.req.write(head);
    const [id] = await waitFor('the pending row', async () => {
      const ids = pendingIds();
      return ids.length === 1 && ids;
    });

    // Older "abandoned" rows of the same gateway id, listed before the upload: they keep the
    // cleanup busy (each costs a delete on every node) while the upload commits.
    const fakes = 450;
    const db = writable(cluster);
    const insert = db.prepare(
      `INSERT INTO files (id, name, content_type, state, max_downloads, created_at, expires_at, delete_token_hash, owner)
       VALUES (?, 'old.jpg', 'image/jpeg', 'pending', 3, ?, ?, '', 'gateway')`,
    );
    db.transaction(() => {
      for (let i = 0; i < fakes; i++)
        insert.run(randomBytes(16).toString('base64url'), 1000 + i, Date.now() + 3600_000);
    })();
    db.close();

    // A second process with the same GATEWAY_ID (a restart while the old one drains): at start
    // its sweep lists every pending row of that id from before it started, ours included.
    const second = cluster.startGateway('gateway-b', { GATEWAY_ID: 'gateway' });
    second.catch(() => undefined);
    await waitFor(
      'the second gateway to start its cleanup pass',
      async () => pendingIds().length < fakes + 1,
      30_000,
    );
    upload.req.end(rest);
    const answer = await upload.answer;
    expect(answer.status, answer.body).toBe(201);
    // The pass had not reached the upload yet when it committed: fakes were still listed.
    expect(pendingIds().length).toBeGreaterThan(0);
    await second;

    const log = () => cluster.proc('gateway-b')!.logFile;
    await waitFor('the cleanup pass to end', async () =>
      readText(log()).includes('cleaned up abandoned uploads'),
    );
    expect(pendingIds()).toEqual([]);
    await cluster.kill('gateway-b', 'SIGTERM');

    const res = await fetch(`${cluster.gatewayUrl}/download/${id}`);
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.status, body.toString().slice(0, 200)).toBe(200);
    expect(sha256(body)).toBe(sha256(Buffer.concat([head, rest])));
    // The race really happened: the pass came to the upload and found it committed.
    expect(readText(log())).toContain('committed meanwhile');
  });

  it('removes the spool file of an upload whose row could not be written', async () => {
    onTestFailed(() => console.log(cluster.logTail(30)));
    const gatewayPid = cluster.gateway!.proc.pid!;
    const spoolDir = join(cluster.dir, 'spool', 'gateway');
    // Another process holds SQLite's write lock past the gateway's busy timeout: beginUpload throws.
    const db = writable(cluster);
    db.prepare('BEGIN IMMEDIATE').run();
    let answer;
    try {
      const data = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(4096)]);
      const res = await fetch(`${cluster.gatewayUrl}/upload/busy.jpg`, {
        method: 'PUT',
        body: data,
      });
      answer = { status: res.status, body: await res.text() };
    } finally {
      db.prepare('ROLLBACK').run();
      db.close();
    }
    expect(answer.status, answer.body).toBeGreaterThanOrEqual(500);
    expect(readdirSync(spoolDir)).toEqual([]);
    const open = readdirSync(`/proc/${gatewayPid}/fd`)
      .map((fd) => readlinkOrEmpty(`/proc/${gatewayPid}/fd/${fd}`))
      .filter((target) => target.includes('.part'));
    expect(open).toEqual([]);
    // It failed where this test means it to: writing the upload's row.
    await waitFor('the failure in the gateway log', async () =>
      /database is locked/.test(readText(cluster.gateway!.logFile)),
    );

    // The gateway carries on.
    const ok = await fetch(`${cluster.gatewayUrl}/upload/fine.jpg`, {
      method: 'PUT',
      body: Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(1024)]),
    });
    expect(ok.status).toBe(201);
  });
});

const readText = (path: string) => readFileSync(path, 'utf8');

function readlinkOrEmpty(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/**
 * `npm run cluster` as an operator runs it: the real script in a child
 * process (built, dist/scripts/cluster.js: the same code without tsx's
 * second or so of start-up per run), on a SQLite store in a temp STORAGE_DIR seeded from NODES, and
 * once on PostgreSQL. A node's GET /health is a small fake server whose
 * answer each test sets (who it is, what it holds).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUpload } from '../shared/metadata-store.contract.js';
import { createLogger } from '../shared/logger.js';
import { PostgresMetadataStore } from '../shared/postgres-metadata-store.js';
import { SqliteMetadataStore, openDatabase } from '../shared/sqlite-metadata-store.js';
import { ROOT, freePort } from './harness.js';
import { createDatabase } from './postgres.js';

const run = promisify(execFile);
const NODES = 'node1=http://127.0.0.1:9001,node2=http://127.0.0.1:9002,node3=http://127.0.0.1:9003';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in `dir` (no .env there) with only the settings given. */
async function cli(dir: string, args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [join(ROOT, 'dist/scripts/cluster.js'), ...args],
      {
        cwd: dir,
        env: { PATH: process.env.PATH, STORAGE_DIR: dir, NODES, LOG_LEVEL: 'warn', ...env },
      },
    );
    return { code: 0, stdout, stderr } satisfies Outcome;
  } catch (err) {
    const e = err as Outcome;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr } satisfies Outcome;
  }
}

interface ShownNode {
  id: string;
  url: string;
  zone: string;
  weight: number;
  role: string;
  replicaRows: number;
}

async function shown(dir: string, env?: Record<string, string>) {
  const { code, stdout, stderr } = await cli(dir, ['show', '--json'], env);
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as {
    version: number;
    note: string;
    nodes: ShownNode[];
    warnings: string[];
    history: { version: number; note: string }[];
  };
}

/** A node's GET /health, answering whatever `identity` is set to. */
async function fakeNode(identity: { id: string; objects: number }) {
  const server: Server = createServer((req, res) => {
    if (req.url !== '/health') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...identity, status: 'ok', bytes: 0 }));
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    identity,
    close: () => new Promise((done) => server.close(done)),
  };
}

describe('npm run cluster (SQLite)', () => {
  let dir: string;
  let node4: Awaited<ReturnType<typeof fakeNode>>;
  let unreachable: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trove-cluster-cli-'));
    node4 = await fakeNode({ id: 'node4', objects: 0 });
    unreachable = `http://127.0.0.1:${await freePort()}`;
  });
  afterAll(async () => {
    await node4?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('shows the layout NODES seeds: each node its own zone, weight 1', async () => {
    const text = await cli(dir, ['show']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /^layout version 1, saved .*: seeded from NODES \(node1, node2, node3\)$/m,
    );
    expect(text.stdout).toMatch(/^ {2}node1 +http:\/\/127\.0\.0\.1:9001 +node1 +1 +active +0$/m);
    expect(text.stdout).toMatch(/^zones: node1 \(node1\), node2 \(node2\), node3 \(node3\)$/m);
    expect(text.stdout).toMatch(/^warnings: none$/m);
    const json = await shown(dir);
    expect(json.nodes.map((n) => [n.id, n.zone, n.weight, n.role])).toEqual([
      ['node1', 'node1', 1, 'active'],
      ['node2', 'node2', 1, 'active'],
      ['node3', 'node3', 1, 'active'],
    ]);
  });

  it('adds a node only once its url answers GET /health with its id, unless told not to check', async () => {
    const down = await cli(dir, ['add', 'node4', '--url', unreachable]);
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/does not answer GET \/health .*--no-check/);
    node4.identity.id = 'node9';
    const other = await cli(dir, ['add', 'node4', '--url', node4.url]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(`${node4.url} answers as node "node9", not "node4"`);
    expect((await shown(dir)).version).toBe(1);

    node4.identity.id = 'node4';
    const added = await cli(dir, [
      'add',
      'node4',
      '--url',
      node4.url,
      '--zone',
      'b',
      '--weight',
      '2',
    ]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toBe(
      `layout version 2 saved: add node4 (${node4.url}, zone b, weight 2)\n` +
        'gateways and workers follow it within a few seconds\n',
    );
    const unchecked = await cli(dir, ['add', 'node5', '--url', unreachable, '--no-check']);
    expect(unchecked.code, unchecked.stderr).toBe(0);
    expect(unchecked.stdout).toMatch(
      /^layout version 3 saved: add node5 \(.*, zone node5, weight 1\)$/m,
    );
    const again = await cli(dir, ['add', 'node5', '--url', 'http://127.0.0.1:9', '--no-check']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/refused: node "node5" is already in the layout/);
  });

  it('sets a zone and weight, drains and undrains', async () => {
    const set = await cli(dir, ['set', 'node4', '--zone', 'c', '--weight', '0.5']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/^layout version 4 saved: set node4: zone b → c, weight 2 → 0\.5$/m);
    expect((await cli(dir, ['drain', 'node4'])).code).toBe(0);
    expect((await shown(dir)).nodes.find((n) => n.id === 'node4')?.role).toBe('draining');
    expect((await cli(dir, ['undrain', 'node4'])).code).toBe(0);
    const view = await shown(dir);
    expect(view.nodes.find((n) => n.id === 'node4')).toMatchObject({
      zone: 'c',
      weight: 0.5,
      role: 'active',
    });
    expect(view.history.map((h) => h.note)).toEqual([
      'undrain node4',
      'drain node4',
      'set node4: zone b → c, weight 2 → 0.5',
      expect.stringMatching(/^add node5/),
      expect.stringMatching(/^add node4/),
    ]);
  });

  it('removes a node only when it is draining, has no replica rows and holds no object', async () => {
    const active = await cli(dir, ['remove', 'node4']);
    expect(active.code).toBe(2);
    expect(active.stderr).toMatch(/refused: node4 is active: drain it first/);

    // A replica row on node5, as a write placed on it would leave.
    const store = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
    await store.beginUpload(newUpload('on-node5'));
    await store.commitUploads([
      {
        id: 'on-node5',
        size: 1,
        sha256: 'x',
        maxDownloads: 3,
        expiresAt: 10_000,
        replicas: [{ key: 'on-node5', node: 'node5', state: 'ok' }],
      },
    ]);
    for (const id of ['node4', 'node5']) expect((await cli(dir, ['drain', id])).code).toBe(0);
    expect((await shown(dir)).nodes.find((n) => n.id === 'node5')?.replicaRows).toBe(1);
    const rows = await cli(dir, ['remove', 'node5', '--force']);
    expect(rows.code).toBe(2);
    expect(rows.stderr).toMatch(/node5 still has 1 replica row\(s\): the rebalance has not moved/);
    await store.forgetReplica('on-node5', 'node5');
    await store.close();

    const silent = await cli(dir, ['remove', 'node5']);
    expect(silent.code).toBe(2);
    expect(silent.stderr).toMatch(/node5 \(.*\) does not answer GET \/health .* with --force/);
    const forced = await cli(dir, ['remove', 'node5', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/removing it anyway \(--force, 0 replica rows\)/);
    expect(forced.stdout).toMatch(/^layout version \d+ saved: remove node5$/m);

    node4.identity.objects = 3;
    const full = await cli(dir, ['remove', 'node4', '--force']);
    expect(full.code).toBe(2);
    expect(full.stderr).toMatch(/node4 still stores 3 object\(s\) \(GET \/health\)/);
    node4.identity.objects = 0;
    const removed = await cli(dir, ['remove', 'node4']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/saved: remove node4\ngateways and workers follow it/);
    expect((await shown(dir)).nodes.map((n) => n.id)).toEqual(['node1', 'node2', 'node3']);
  });

  it('refuses a bad command line with the usage, and warns of a layout short of zones', async () => {
    // Each refusal is in scripts/cluster/options.test.ts; here, that the script answers them.
    for (const args of [['grow'], ['drain', 'node1', '--force']]) {
      const bad = await cli(dir, args);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(/^usage: npm run cluster -- <command>$/m);
    }
    const help = await cli(dir, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage:/);
    const zoned = await cli(dir, ['set', 'node3', '--zone', 'node2']);
    expect(zoned.stdout).toMatch(/^warning: only 2 zone\(s\) for 3 replicas/m);
    expect((await shown(dir)).warnings).toHaveLength(1);
  });
});

describe('npm run cluster (PostgreSQL)', () => {
  it('seeds, changes and shows the layout in DATABASE_URL, two changes at once included', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trove-cluster-cli-pg-'));
    const db = await createDatabase('cluster_cli');
    const env = { DATABASE_URL: db.url };
    try {
      expect((await shown(dir, env)).version).toBe(1);
      // Two operators at once: each change lands, one on top of the other.
      const adds = await Promise.all(
        ['node4', 'node5'].map((id, i) =>
          cli(dir, ['add', id, '--url', `http://10.0.0.${i + 4}:9001`, '--no-check'], env),
        ),
      );
      expect(
        adds.map((r) => r.code),
        adds.map((r) => r.stderr).join(''),
      ).toEqual([0, 0]);
      const view = await shown(dir, env);
      expect(view.version).toBe(3);
      expect(view.nodes.map((n) => n.id).sort()).toEqual([
        'node1',
        'node2',
        'node3',
        'node4',
        'node5',
      ]);
      const store = await PostgresMetadataStore.open({
        url: db.url,
        log: createLogger('test', 'silent'),
      });
      try {
        expect((await store.currentLayout())?.nodes).toHaveLength(5);
      } finally {
        await store.close();
      }
    } finally {
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

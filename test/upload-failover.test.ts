/**
 * An upload in flight when a storage node dies with `kill -9` still succeeds,
 * whichever node of its chain it was: a successor is replayed by its
 * predecessor, a dead head by the gateway from its spool, never to the head
 * that just failed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { rankNodes } from '../shared/placement.js';
import {
  filesUnder,
  fixture,
  hashBody,
  jpegStream,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
  type TestNode,
} from './harness.js';

const logLines = (file: string) => readFileSync(file, 'utf8').split('\n');

/** The parsed log lines of a process that have `msg`. */
function logged(file: string, msg: string): any[] {
  return logLines(file)
    .filter((l) => l.includes(`"msg":"${msg}`))
    .map((l) => JSON.parse(l));
}

/** What a node's data directory holds of `key`: temp files (a write under way) and committed blobs. */
async function onDisk(node: TestNode, key: string) {
  const files = (await filesUnder(node.dataDir)).filter((f) => f.includes(key));
  return {
    temp: files.filter((f) => f.startsWith('tmp/')),
    committed: files.filter((f) => f.startsWith('blobs/')),
  };
}

describe('uploads across a node death', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ env: { LOG_LEVEL: 'debug' } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  /** The node a fresh write reached first (its hop-0 log line), after `since` lines per node. */
  function headOfNewWrite(since: Map<string, number>): string | undefined {
    for (const node of cluster.nodes) {
      const lines = logLines(node.proc!.logFile).slice(since.get(node.id));
      if (lines.some((l) => l.includes('"hop":0') && l.includes('blob write started')))
        return node.id;
    }
    return undefined;
  }

  const logLengths = () =>
    new Map(cluster.nodes.map((n) => [n.id, logLines(n.proc!.logFile).length - 1]));

  /**
   * Starts a 48 MB upload, kills the node `pick` chooses once the upload's
   * bytes are landing in that node's temp file, and returns the answer with
   * what the victim's disk held of the upload when it died.
   */
  async function uploadWhileKilling(pick: (head: string) => string) {
    const size = 48 * 1024 * 1024;
    const payload = jpegStream(size, 256 * 1024);
    const since = logLengths();
    const answer = request(`${cluster.gatewayUrl}/upload/big.jpg?max_downloads=0`, {
      method: 'PUT',
      body: payload.stream,
      headers: { 'content-length': String(size) },
    });
    const head = await waitFor('a chain head', async () => headOfNewWrite(since));
    const victim = cluster.nodes.find((n) => n.id === pick(head))!;
    // Mid-stream: the victim has started writing this upload's bytes to its temp file.
    await waitFor(`${victim.id} writing the upload`, async () => {
      const temp = (await filesUnder(victim.dataDir)).filter((f) => f.startsWith('tmp/'));
      return temp.length > 0;
    });
    await cluster.kill(victim.id, 'SIGKILL');
    const res = await answer;
    const body = (await res.body.json()) as any;
    const disk = body.id ? await onDisk(victim, body.id) : undefined;
    await cluster.startNode(victim.id); // empties its tmp/: read the disk before
    return {
      status: res.statusCode,
      body,
      sha256: payload.digest(),
      size,
      victim: victim.id,
      disk,
    };
  }

  it('completes when the chain head dies mid-stream', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const up = await uploadWhileKilling((head) => head);
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect(up.body.sha256).toBe(up.sha256);
    const ok = up.body.replicas.filter((r: any) => r.state === 'ok');
    expect(ok.length).toBeGreaterThanOrEqual(2);
    expect(ok.map((r: any) => r.node)).not.toContain(up.victim);
    // It really died mid-stream: its copy never committed, and the gateway had to replay the upload.
    expect(up.disk!.temp).toHaveLength(1);
    expect(up.disk!.committed).toEqual([]);
    const replays = logged(cluster.gateway!.logFile, 'chain head failed mid-upload');
    expect(replays.filter((l) => l.id === up.body.id).map((l) => l.node)).toEqual([up.victim]);
    const res = await request(`${cluster.gatewayUrl}/download/${up.body.id}`);
    expect(await hashBody(res.body)).toEqual({ sha256: up.sha256, size: up.size });
  });

  it('completes when a node behind the head dies mid-stream', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const up = await uploadWhileKilling((head) => cluster.nodes.find((n) => n.id !== head)!.id);
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect(up.body.sha256).toBe(up.sha256);
    // The successor died while the bytes streamed through it: its temp write had started and
    // never committed, its predecessor saw it fail, and the answer records its copy missing.
    expect(up.disk!.temp).toHaveLength(1);
    expect(up.disk!.committed).toEqual([]);
    const failedSuccessor = cluster.nodes.flatMap((n) =>
      logged(n.proc!.logFile, 'chain successor failed').filter((l) => l.key === up.body.id),
    );
    expect(failedSuccessor.map((l) => l.node)).toEqual([up.victim]);
    expect(up.body.replicas).toContainEqual({ node: up.victim, state: 'missing' });
    expect(up.body.replicas.filter((r: any) => r.state === 'ok')).toHaveLength(2);
    const res = await request(`${cluster.gatewayUrl}/download/${up.body.id}`);
    expect(await hashBody(res.body)).toEqual({ sha256: up.sha256, size: up.size });
  });
});

/** Established TCP connections into `port`, from its server's side: the peer's port and the bytes not read yet. */
function connectionsInto(port: number): { peerPort: number; unread: number }[] {
  return ss(['state', 'established', `( sport = :${port} )`]).map((cols) => ({
    unread: Number(cols[0]),
    peerPort: Number(cols[3]!.split(':').pop()),
  }));
}

/** Local ports of the TCP connections process `pid` holds to `port`. */
function portsOf(pid: number, port: number): Set<number> {
  return new Set(
    ss(['-p', 'state', 'established', `( dport = :${port} )`])
      .filter((cols) => cols.join(' ').includes(`pid=${pid},`))
      .map((cols) => Number(cols[2]!.split(':').pop())),
  );
}

function ss(args: string[]): string[][] {
  return execFileSync('ss', ['-tnH', ...args], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => l.trim().split(/\s+/));
}

describe('an upload whose head fails after taking every byte', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    // Probes at start-up only: a scheduled probe of the stopped node below would time out and
    // mark it suspect before its connections are cut, and the moment under test is the one
    // right after a kill -9, when the gateway still counts the failed head online.
    cluster = await startCluster({ env: { PROBE_SCHEDULE: '0 0 0 1 1 *' } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  let seq = 0;
  const image = () =>
    Buffer.concat([fixture('photo.jpg'), Buffer.from(`head-cut-${seq++}-${Date.now()}`)]);

  /** One upload, and everything the client got back, so that a failure names itself. */
  async function put(data: Buffer) {
    const res = await fetch(`${cluster.gatewayUrl}/upload/h.jpg?max_downloads=0`, {
      method: 'PUT',
      body: data,
    });
    const text = await res.text();
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return {
      status: res.status,
      headers: Object.fromEntries(res.headers),
      text,
      body,
      sha256: sha256(data),
    };
  }

  it('stores it on the other nodes, not on the failed head the gateway still counts online', async () => {
    onTestFailed(() => console.log(cluster.logTail(80)));
    const node1 = cluster.nodes[0]!;
    const gatewayPid = cluster.gateway!.proc.pid!;
    const bodySize = fixture('photo.jpg').length;
    await Promise.all(Array.from({ length: 12 }, () => put(image()))); // keep-alive connections

    // node1 stops answering: every upload has it in its chain, so each one waits on it, its
    // bytes unread in node1's sockets (from the gateway when node1 is the head, else from a node).
    node1.proc!.proc.kill('SIGSTOP');
    const count = 24;
    let answered = 0;
    const answers = Array.from({ length: count }, () => put(image()).finally(() => answered++));
    await waitFor('every upload waiting on node1', async () => {
      return connectionsInto(node1.port).filter((c) => c.unread >= bodySize).length >= count;
    });
    const fromGateway = portsOf(gatewayPid, node1.port);
    const headed = connectionsInto(node1.port).filter(
      (c) => c.unread >= bodySize && fromGateway.has(c.peerPort),
    ).length;

    // To its peers node1 dies now (a reset on every connection, as at a kill -9) with every
    // byte of those uploads taken and none answered; its stopped process still takes connections.
    // (`ss -K` closes sockets from outside their process: it needs CAP_NET_ADMIN.)
    execFileSync('ss', ['-K', '-tnH', 'state', 'established', `( sport = :${node1.port} )`]);
    // A replay offered to node1 would wait on it: let it get there, then kill node1 for good.
    await waitFor('the uploads answered, or a replay waiting on node1', async () => {
      if (answered === count) return true;
      const gw = portsOf(gatewayPid, node1.port);
      return connectionsInto(node1.port).some((c) => c.unread >= bodySize && gw.has(c.peerPort));
    });
    await cluster.kill('node1', 'SIGKILL');
    const got = await Promise.all(answers);

    expect(got.filter((g) => g.status !== 201 || !g.body)).toEqual([]);
    for (const g of got) {
      expect(g.body.replicas).toContainEqual({ node: 'node1', state: 'missing' });
      expect(g.body.replicas.filter((r: any) => r.state === 'ok')).toHaveLength(2);
    }
    // The fault happened: uploads headed by node1 failed after their last byte and were
    // replayed, and node1 went suspect through one of them (no probe ran), so the gateway's
    // view still had it online when they failed.
    expect(headed).toBeGreaterThan(0);
    const ids = new Set(got.map((g) => g.body.id));
    const replayed = logged(cluster.gateway!.logFile, 'chain head failed mid-upload').filter((l) =>
      ids.has(l.id),
    );
    expect(replayed).toHaveLength(headed);
    const ours = new Set(got.map((g) => g.headers['x-request-id']));
    const suspect = logged(cluster.gateway!.logFile, 'storage node').filter(
      (l) => l.node === 'node1' && l.from === 'online',
    );
    expect(suspect.map((l) => ours.has(l.request_id))).toEqual([true]);
    for (const g of got) {
      const res = await fetch(`${cluster.gatewayUrl}/download/${g.body.id}`);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(g.sha256);
    }
  });
});

describe('an upload no node of its chain takes', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    // No scheduled probes: the gateway still counts the killed nodes online, so the upload
    // meets each of them first-hand, as one does in the second after a kill.
    cluster = await startCluster({ env: { PROBE_SCHEDULE: '0 0 0 1 1 *' } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('is answered 503 while the client is still sending, and the gateway stays up', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    for (const node of cluster.nodes) await cluster.kill(node.id, 'SIGKILL');
    // The first 64 KiB of a JPEG, and the rest held back until the answer has come.
    const first = Buffer.alloc(64 * 1024, 7);
    first.set([0xff, 0xd8, 0xff, 0xe0], 0);
    const body = new Readable({ read() {} });
    body.push(first);
    const requestId = `all-refuse-${Date.now()}`;
    const answer = await request(`${cluster.gatewayUrl}/upload/r.jpg`, {
      method: 'PUT',
      body,
      headers: { 'x-request-id': requestId },
    }).then(
      async (res) => ({ status: res.statusCode, text: await res.body.text() }),
      (err: Error) => ({ status: 0, text: `no answer: ${err.message}` }),
    );
    body.push(null);

    expect(answer.status, answer.text).toBe(503);
    expect(JSON.parse(answer.text).error.code).toBe('NOT_ENOUGH_NODES');
    // Every node of the chain refused this very upload (each one went suspect through it).
    // The registry records a failure in Redis, then logs: a line may follow the answer.
    const suspects = () =>
      logged(cluster.gateway!.logFile, 'storage node suspect')
        .filter((l) => l.request_id === requestId)
        .map((l) => l.node)
        .sort();
    await waitFor('a suspect line per node', async () => suspects().length >= 3, 5_000).catch(
      () => {},
    );
    expect(suspects()).toEqual(['node1', 'node2', 'node3']);
    const health = await fetch(`${cluster.gatewayUrl}/health`);
    expect(health.status).toBe(200);
    expect(cluster.gateway!.proc.exitCode).toBeNull();
  });
});

describe('an upload while one node is down and another only suspect', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    // No scheduled probes: the nodes' states below come from requests alone, and stay put.
    cluster = await startCluster({
      env: { PROBE_SCHEDULE: '0 0 0 1 1 *', NODE_TIMEOUT_MS: '1000' },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const status = async () =>
    Object.fromEntries(
      ((await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as any).nodes.map(
        (n: any) => [n.id, n.status],
      ),
    );

  it('is stored on the two nodes that are up', async () => {
    onTestFailed(() => console.log(cluster.logTail()));
    const [node1, , node3] = cluster.nodes;
    // Files that node3, and node1, would serve first.
    const firstOn: Record<string, { id: string; sha256: string }> = {};
    for (let i = 0; i < 40 && !(firstOn.node1 && firstOn.node3); i++) {
      const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`suspect-${i}-${Date.now()}`)]);
      const res = await fetch(`${cluster.gatewayUrl}/upload/s.jpg?max_downloads=0`, {
        method: 'PUT',
        body: data,
      });
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as { id: string };
      firstOn[rankNodes(id, cluster.nodes)[0]!.id] ??= { id, sha256: sha256(data) };
    }
    const download = async (file: { id: string; sha256: string }, requestId: string) => {
      const res = await fetch(`${cluster.gatewayUrl}/download/${file.id}`, {
        headers: { 'x-request-id': requestId },
      });
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(file.sha256);
    };

    // node3 stalls past NODE_TIMEOUT_MS on a read: suspect, as after a probe timed out under load.
    node3!.proc!.proc.kill('SIGSTOP');
    await download(firstOn.node3!, 'stall-node3');
    await waitFor('node3 suspect', async () => (await status()).node3 === 'suspect');
    node3!.proc!.proc.kill('SIGCONT');
    // node1 dies, and a read finds out.
    await cluster.kill(node1!.id, 'SIGKILL');
    await download(firstOn.node1!, 'find-node1-dead');
    await waitFor('node1 not online', async () => (await status()).node1 !== 'online');
    // The fault is in place: only node2 online, node3 suspect though it is up.
    expect(await status()).toMatchObject({ node2: 'online', node3: 'suspect' });
    expect((await fetch(`${node3!.url}/health`)).status).toBe(200);
    const suspect = logged(cluster.gateway!.logFile, 'storage node suspect');
    expect(suspect.filter((l) => l.node === 'node3').map((l) => l.request_id)).toEqual([
      'stall-node3',
    ]);

    const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`after-${Date.now()}`)]);
    const res = await fetch(`${cluster.gatewayUrl}/upload/s.jpg?max_downloads=0`, {
      method: 'PUT',
      body: data,
    });
    const text = await res.text();
    expect(res.status, text).toBe(201);
    const body = JSON.parse(text);
    expect(body.replicas).toContainEqual({ node: 'node2', state: 'ok' });
    expect(body.replicas).toContainEqual({ node: 'node3', state: 'ok' });
    expect(body.replicas).toContainEqual({ node: 'node1', state: 'missing' });
    await download({ id: body.id, sha256: sha256(data) }, 'read-back');
  });
});

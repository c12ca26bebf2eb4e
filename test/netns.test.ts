/**
 * Hosts that share nothing but the network (test/netns.ts): each storage node
 * in a Linux network namespace of its own, the gateway, the worker and the
 * services in the root one, partitions made by taking links down and by
 * routing rules. First the network itself, then a Trove cluster across it.
 *
 * Needs root and iproute2: without them these tests fail, they never skip.
 */
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { topologyNames, workQueues } from '../shared/jobs.js';
import {
  fixture,
  NAMESPACE_NODE_PORT,
  queueCountsAll,
  sha256,
  startCluster,
  waitFor,
  type Cluster,
} from './harness.js';
import { createNetwork, type Network, type NetnsHost } from './netns.js';

const execFileAsync = promisify(execFile);
/** A probe's wait for an answer that should come (generous: a loaded machine is slow to start a process). */
const ANSWER_MS = 5000;
/** A probe's wait for an answer that should not come. */
const LOST_MS = 1500;
/** A probe: from a host or the root namespace, a URL, and how long to wait for it. */
type Case = [NetnsHost | 'root', string, number?];

/** What the probes' servers in the hosts listen on (below the ephemeral range, see netns.ts). */
const PORT = 7000;

const SERVER = `
const [addr, port, name] = process.argv.slice(1);
require('node:http').createServer((req, res) => res.end(name)).listen(+port, addr, () => console.log('listening'));
`;

/** GETs a URL once, on a fresh connection; prints `ok <body>` or the error's code. */
const CLIENT = `
const [url, ms] = process.argv.slice(1);
const req = require('node:http').get(url, { agent: false, timeout: +ms }, (res) => {
  let body = '';
  res.on('data', (c) => (body += c)).on('end', () => console.log('ok ' + body));
});
req.on('timeout', () => { console.log('TIMEOUT'); process.exit(0); });
req.on('error', (e) => console.log(e.code ?? e.message));
`;

const links = () =>
  spawnSync('ip', ['-br', 'link'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(/\s+/)[0]!.split('@')[0]!)
    .filter(Boolean)
    .sort();
const namespaces = () => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;

describe('createNetwork', () => {
  it('fails, saying what is missing, when a namespace cannot be created, and leaves nothing', () => {
    let message = '';
    try {
      createNetwork(2, { namespacePrefix: 'no/such' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(
      /^cannot create network namespace "no\/such-\d+-[0-9a-f]{6}-h1" \(ip netns add\): .+; the netns tests need root and iproute2/,
    );
    // Its bridge (trb<suffix>) and links (trv<suffix>h<i>) are gone again.
    const suffix = /-([0-9a-f]{6})-h1/.exec(message)![1]!;
    expect(links().filter((l) => l.includes(suffix))).toEqual([]);
    expect(namespaces()).not.toContain('no/such');
  });
});

describe('a network of three hosts', () => {
  let net: Network;
  const servers: ChildProcess[] = [];
  let root: Server;
  let rootPort = 0;

  beforeAll(async () => {
    net = createNetwork(3);
    root = createServer((_req, res) => res.end('root'));
    await new Promise<void>((done) => root.listen(0, '0.0.0.0', done));
    rootPort = (root.address() as AddressInfo).port;
    await Promise.all(
      net.hosts.map(async (h) => {
        const proc = net.spawn(h, process.execPath, [
          '-e',
          SERVER,
          h.address,
          String(PORT),
          h.name,
        ]);
        servers.push(proc);
        await new Promise<void>((done, fail) => {
          proc.stdout!.once('data', () => done());
          proc.once('exit', (code) => fail(new Error(`${h.name}'s server exited ${code}`)));
        });
      }),
    );
  });
  afterAll(async () => {
    try {
      await new Promise((done) => root?.close(done));
    } finally {
      net?.destroy();
    }
  });

  /** `ok <name>` when `from` (a host, or the root namespace) gets an answer from `url`, else the error. */
  async function get(from: NetnsHost | 'root', url: string, ms = ANSWER_MS): Promise<string> {
    const args = ['-e', CLIENT, url, String(ms)];
    const out =
      from === 'root'
        ? (await execFileAsync(process.execPath, args, { encoding: 'utf8' })).stdout
        : await net.exec(from, process.execPath, ...args);
    return out.trim();
  }
  /** Runs the probes at once (each [from, url, timeout?]): what each got, by the probe's label. */
  async function probe(cases: Record<string, Case>): Promise<Record<string, string>> {
    const entries = Object.entries(cases);
    const results = await Promise.all(entries.map(([, [from, to, ms]]) => get(from, to, ms)));
    return Object.fromEntries(entries.map(([label], i) => [label, results[i]!]));
  }
  const url = (h: NetnsHost) => `http://${h.address}:${PORT}/`;
  const h1 = () => net.hosts[0]!;
  const h2 = () => net.hosts[1]!;
  const h3 = () => net.hosts[2]!;
  /** A connection into a cut: no answer, or (once the neighbour entry has failed) no route. */
  const lost = expect.stringMatching(/^(TIMEOUT|EHOSTUNREACH)$/);

  it('gives every host its own namespace, address and loopback, on a bridge of its own', () => {
    expect(net.bridge.length).toBeLessThanOrEqual(15);
    expect(net.subnet).toMatch(/^10\.\d+\.\d+\.0\/24$/);
    const inodes = new Set(net.hosts.map((h) => statSync(`/var/run/netns/${h.namespace}`).ino));
    inodes.add(statSync('/proc/self/ns/net').ino);
    expect(inodes.size).toBe(4);
    for (const h of net.hosts) expect(h.address.startsWith(net.subnet.slice(0, -4))).toBe(true);
    expect(new Set(net.hosts.map((h) => h.address)).size).toBe(3);
  });

  it('lets hosts reach each other and the bridge address, and nothing else', async () => {
    const cases: Record<string, Case> = {};
    const expected: Record<string, string> = {};
    for (const from of net.hosts) {
      for (const to of net.hosts) {
        cases[`${from.name}→${to.name}`] = [from, url(to)];
        expected[`${from.name}→${to.name}`] = `ok ${to.name}`;
      }
      cases[`${from.name}→bridge`] = [from, `http://${net.bridgeAddress}:${rootPort}/`];
      expected[`${from.name}→bridge`] = 'ok root';
      // Its 127.0.0.1 is its own: nothing listens there.
      cases[`${from.name}→its loopback`] = [from, `http://127.0.0.1:${rootPort}/`];
      expected[`${from.name}→its loopback`] = 'ECONNREFUSED';
    }
    cases['root→h2'] = ['root', url(h2())];
    expected['root→h2'] = 'ok h2';
    // Another address of the root namespace (when it has one): no route to it.
    const other = rootAddresses().find((a) => a !== net.bridgeAddress);
    if (other) {
      cases['h1→root elsewhere'] = [h1(), `http://${other}:${rootPort}/`];
      expected['h1→root elsewhere'] = 'ENETUNREACH';
    }
    expect(await probe(cases)).toEqual(expected);
  });

  it('cut: a host reaches nobody and nobody reaches it, while it keeps running; heal undoes it', async () => {
    net.cut(h3());
    expect(
      await probe({
        'h1→h3': [h1(), url(h3()), LOST_MS],
        'root→h3': ['root', url(h3()), LOST_MS],
        'h3→h1': [h3(), url(h1()), LOST_MS],
        'h3→bridge': [h3(), `http://${net.bridgeAddress}:${rootPort}/`, LOST_MS],
        'h1→h2': [h1(), url(h2())],
        'h3→h3': [h3(), url(h3())],
      }),
    ).toEqual({
      'h1→h3': lost,
      'root→h3': lost,
      'h3→h1': lost,
      'h3→bridge': lost,
      // The others are untouched, and h3's server still runs and answers at home.
      'h1→h2': 'ok h2',
      'h3→h3': 'ok h3',
    });
    expect(servers[2]!.exitCode).toBeNull();
    net.heal(h3());
    await expect
      .poll(
        () =>
          probe({
            'h1→h3': [h1(), url(h3())],
            'root→h3': ['root', url(h3())],
            'h3→h2': [h3(), url(h2())],
          }),
        { timeout: 10_000 },
      )
      .toEqual({ 'h1→h3': 'ok h3', 'root→h3': 'ok h3', 'h3→h2': 'ok h2' });
  });

  it('cutBetween (drop): a→b hangs, while b→a, root→b and the rest still work', async () => {
    expect(await get(h2(), url(h1()))).toBe('ok h1'); // h2 knows h1's MAC, and will not ask again
    net.cutBetween(h1(), h2());
    // h1 forgets h2's: to answer h2 it must ask (ARP), and h2 must reply, as ARP is not cut.
    await net.exec(h1(), 'ip', 'neigh', 'flush', 'all');
    expect(
      await probe({
        'h1→h2': [h1(), url(h2()), LOST_MS],
        'h2→h1': [h2(), url(h1())],
        'root→h2': ['root', url(h2())],
        'h3→h2': [h3(), url(h2())],
        'h1→h3': [h1(), url(h3())],
      }),
    ).toEqual({
      'h1→h2': 'TIMEOUT',
      'h2→h1': 'ok h1',
      'root→h2': 'ok h2',
      'h3→h2': 'ok h2',
      'h1→h3': 'ok h3',
    });
    net.healBetween(h1(), h2());
    expect(await get(h1(), url(h2()))).toBe('ok h2');
    net.healBetween(h1(), h2()); // idempotent
  });

  it('cutBetween (reject): a→b is refused at once, b→a still works', async () => {
    net.cutBetween(h1(), h2(), 'reject');
    expect(
      await probe({
        'h1→h2': [h1(), url(h2())],
        'h2→h1': [h2(), url(h1())],
        'root→h2': ['root', url(h2())],
      }),
    ).toEqual({ 'h1→h2': 'ENETUNREACH', 'h2→h1': 'ok h1', 'root→h2': 'ok h2' });
    net.healBetween(h1(), h2());
    expect(await get(h1(), url(h2()))).toBe('ok h2');
  });

  it('cutBetween both ways is a partition between two hosts the root still reaches', async () => {
    net.cutBetween(h1(), h2());
    net.cutBetween(h2(), h1());
    const cases: Record<string, Case> = {
      'h1→h2': [h1(), url(h2())],
      'h2→h1': [h2(), url(h1())],
      'root→h1': ['root', url(h1())],
      'root→h2': ['root', url(h2())],
    };
    const cut: Record<string, Case> = {
      ...cases,
      'h1→h2': [h1(), url(h2()), LOST_MS],
      'h2→h1': [h2(), url(h1()), LOST_MS],
    };
    expect(await probe(cut)).toEqual({
      'h1→h2': 'TIMEOUT',
      'h2→h1': 'TIMEOUT',
      'root→h1': 'ok h1',
      'root→h2': 'ok h2',
    });
    net.healBetween(h1(), h2());
    net.healBetween(h2(), h1());
    expect(await probe(cases)).toEqual({
      'h1→h2': 'ok h2',
      'h2→h1': 'ok h1',
      'root→h1': 'ok h1',
      'root→h2': 'ok h2',
    });
  });

  it('destroy removes every namespace and link, and kills what ran in them', async () => {
    const other = createNetwork(2);
    const proc = other.spawn(other.hosts[0]!, 'sleep', ['600']);
    const exited = new Promise((done) => proc.once('exit', done));
    await new Promise((r) => setTimeout(r, 100));
    expect(proc.pid).toBeGreaterThan(0);
    other.destroy();
    await exited;
    other.destroy(); // idempotent
    expect(links().filter((l) => l.includes(other.bridge.slice(3)))).toEqual([]);
    for (const h of other.hosts) expect(namespaces()).not.toContain(h.namespace);
  });
});

describe('a Trove cluster whose nodes are hosts of their own', () => {
  let net: Network;
  let cluster: Cluster;

  beforeAll(async () => {
    net = createNetwork(4); // h1-h3 for node1-node3, h4 for a node added later
    cluster = await startCluster({
      worker: true,
      nodeNamespaces: net.hosts
        .slice(0, 3)
        .map((h) => ({ namespace: h.namespace, address: h.address })),
      env: {
        // Downloads read the nodes every time: the gateway's cache of small blobs would hide a cut.
        DOWNLOAD_CACHE_BYTES: '0',
        // What a connection into a cut costs (connect, first byte of a read); 5 s by default.
        NODE_TIMEOUT_MS: '2000',
      },
    });
  });
  afterAll(async () => {
    try {
      await cluster?.stop();
    } finally {
      net?.destroy();
    }
  });
  const showLogs = () => onTestFailed(() => console.log(cluster.logTail(60)));

  interface Uploaded {
    id: string;
    sha256: string;
    replicas: { node: string; state: string }[];
  }
  let seq = 0;
  async function upload(): Promise<Uploaded> {
    const data = Buffer.concat([fixture('photo.jpg'), Buffer.from(`netns-${seq++}-${Date.now()}`)]);
    const res = await fetch(`${cluster.gatewayUrl}/upload/n.jpg?max_downloads=0`, {
      method: 'PUT',
      body: data,
      signal: AbortSignal.timeout(60_000),
    });
    const body = (await res.json()) as Omit<Uploaded, 'sha256'>;
    expect(res.status, JSON.stringify(body)).toBe(201);
    return { ...body, sha256: sha256(data) };
  }
  /** Downloads a file whole; resolves with the time it took, once its bytes are checked. */
  async function download(file: Uploaded): Promise<number> {
    const started = Date.now();
    const res = await fetch(`${cluster.gatewayUrl}/download/${file.id}`, {
      signal: AbortSignal.timeout(60_000),
    });
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(file.sha256);
    return Date.now() - started;
  }
  const nodeStatus = async (id: string) => {
    const view = (await (await fetch(`${cluster.gatewayUrl}/api/cluster`)).json()) as {
      nodes: { id: string; status: string }[];
    };
    return view.nodes.find((n) => n.id === id)?.status;
  };
  const replicasOf = async (id: string) =>
    ((await (await fetch(`${cluster.gatewayUrl}/files/${id}`)).json()) as Uploaded).replicas;
  const byNode = (replicas: { node: string; state: string }[]) =>
    Object.fromEntries(replicas.map((r) => [r.node, r.state]));
  const netNamespaceOf = (pid: number) => statSync(`/proc/${pid}/ns/net`).ino;

  const files: Uploaded[] = [];

  /** Resolves once no job waits or runs: no chain write of the worker is in flight. */
  const workerIdle = () => {
    const names = topologyNames(cluster.clusterName);
    return waitFor('the worker idle', async () => {
      const counts = queueCountsAll();
      return workQueues(names).every((q) => {
        const c = counts.get(q);
        return !c || c.ready + c.unacked === 0;
      });
    });
  };
  const allOk = async (list: Uploaded[]) => {
    for (const file of list) {
      const replicas = await replicasOf(file.id);
      if (replicas.length !== 3 || replicas.some((r) => r.state !== 'ok')) return false;
    }
    return true;
  };

  it('runs each node in its host', async () => {
    showLogs();
    for (const [i, node] of cluster.nodes.entries()) {
      const host = net.hosts[i]!;
      expect(node.namespace).toBe(host.namespace);
      expect(node.url).toBe(`http://${host.address}:${NAMESPACE_NODE_PORT}`);
      // The node process itself (ip netns exec execs it): in the host's namespace, not the root's.
      const pid = node.proc!.proc.pid!;
      expect(netNamespaceOf(pid)).toBe(statSync(`/var/run/netns/${host.namespace}`).ino);
      expect(netNamespaceOf(pid)).not.toBe(netNamespaceOf(process.pid));
      expect(await nodeStatus(node.id)).toBe('online');
    }
  });

  // First of the uploads: node1 has no kept-alive connection to node2 yet (one would hang, see the todo).
  it('cutBetween: a chain successor its predecessor cannot reach, the gateway can: 201s with 2 copies, repaired while the cut lasts', async () => {
    showLogs();
    net.cutBetween('h1', 'h2');
    const uploaded: { file: Uploaded; ms: number }[] = [];
    // node1 right before node2 in a chain is one chain in three: upload until some are.
    const cutPair = (f: Uploaded) => {
      const order = f.replicas.map((r) => r.node);
      return order.indexOf('node2') === order.indexOf('node1') + 1;
    };
    for (let batch = 0; batch < 8 && !uploaded.some((u) => cutPair(u.file)); batch++) {
      uploaded.push(
        ...(await Promise.all(
          Array.from({ length: 4 }, async () => {
            const started = Date.now();
            const file = await upload();
            return { file, ms: Date.now() - started };
          }),
        )),
      );
    }
    const through = uploaded.filter((u) => cutPair(u.file));
    expect(through.length).toBeGreaterThan(0);
    for (const { file } of uploaded) {
      // Replicas in chain order: node1 could not pass the bytes on; it replayed them past node2.
      expect(byNode(file.replicas)).toEqual({
        node1: 'ok',
        node2: cutPair(file) ? 'missing' : 'ok',
        node3: 'ok',
      });
      await download(file);
    }
    // The gateway reaches node2 all along.
    expect(await nodeStatus('node2')).toBe('online');
    const repairStarted = Date.now();
    await waitFor(
      'node2 repaired over the root namespace',
      () => allOk(through.map((u) => u.file)),
      30_000,
    );
    console.log(
      `cutBetween h1→h2: ${uploaded.length} uploads, the ${through.length} through node1→node2 ` +
        `took ${through.map((u) => u.ms).join(', ')} ms (the others at most ` +
        `${Math.max(...uploaded.filter((u) => !cutPair(u.file)).map((u) => u.ms))} ms); ` +
        `their node2 copies repaired in ${Date.now() - repairStarted} ms, node2 online throughout`,
    );
    expect(await nodeStatus('node2')).toBe('online');
    await workerIdle(); // its variant writes through node1→node2 wait for a connect timeout too
    net.healBetween('h1', 'h2');
  });

  it('stores and serves files across the bridge', async () => {
    showLogs();
    for (let i = 0; i < 6; i++) files.push(await upload());
    for (const file of files) {
      expect(byNode(file.replicas)).toEqual({ node1: 'ok', node2: 'ok', node3: 'ok' });
      await download(file);
    }
  });

  it('cut: the node goes suspect then offline, reads fail over, uploads keep 2 of 3 copies; healed, every file gets its 3 copies back', async () => {
    showLogs();
    // No chain write may be in flight at the cut: one on a kept-alive connection to the cut
    // node hangs for 120 s (see the todo below). The worker writes the images' variants.
    await workerIdle();

    const cutAt = Date.now();
    net.cut('h3');
    const since = () => Date.now() - cutAt;
    // Reads in flight at the cut, while the gateway still has node3 online.
    const [atCut, suspectMs] = await Promise.all([
      Promise.all(files.map((f) => download(f))),
      waitFor('node3 suspect', async () => (await nodeStatus('node3')) !== 'online' && since()),
    ]);
    const offlineMs = await waitFor(
      'node3 offline',
      async () => (await nodeStatus('node3')) === 'offline' && since(),
    );
    expect(cluster.nodes[2]!.proc!.proc.exitCode).toBeNull(); // cut off, not dead

    const readsMs = await Promise.all(files.map((f) => download(f)));
    const uploadStarted = Date.now();
    const during: Uploaded[] = [];
    for (let i = 0; i < 4; i++) during.push(await upload());
    const uploadsMs = Date.now() - uploadStarted;
    for (const file of during) {
      expect(byNode(file.replicas)).toEqual({ node1: 'ok', node2: 'ok', node3: 'missing' });
      await download(file);
    }
    files.push(...during);

    const healAt = Date.now();
    net.heal('h3');
    await waitFor('node3 online', async () => (await nodeStatus('node3')) === 'online');
    const onlineMs = Date.now() - healAt;
    await waitFor('every file with 3 ok copies', () => allOk(files), 45_000);
    const repairedMs = Date.now() - healAt;
    console.log(
      `cut h3: node3 suspect after ${suspectMs} ms, offline after ${offlineMs} ms; ` +
        `downloads at the cut took ${Math.max(...atCut)} ms at most, after it ${Math.max(...readsMs)} ms; ` +
        `4 uploads during the cut ${uploadsMs} ms; healed: online after ${onlineMs} ms, ` +
        `every file with 3 ok copies after ${repairedMs} ms`,
    );
    for (const file of during) await download(file);
  });

  it('cut under uploads in flight on kept-alive connections: each answers 201 with 2 copies, replayed from the spool, in seconds', async () => {
    showLogs();
    await workerIdle();
    for (let i = 0; i < 3; i++) await upload(); // connections to every node kept alive
    /** 1 MiB sent over about 1.5 s: still streaming when the cut comes. */
    const slowUpload = async () => {
      const started = Date.now();
      const chunk = Buffer.alloc(16 * 1024, seq++);
      const data = Buffer.concat([
        fixture('photo.jpg'),
        ...Array.from({ length: 64 }, () => chunk),
      ]);
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          for (let off = 0; off < data.length; off += chunk.length) {
            controller.enqueue(data.subarray(off, off + chunk.length));
            await new Promise((r) => setTimeout(r, 25));
          }
          controller.close();
        },
      });
      const res = await fetch(`${cluster.gatewayUrl}/upload/slow.jpg?max_downloads=0`, {
        method: 'PUT',
        body,
        duplex: 'half',
        signal: AbortSignal.timeout(90_000),
      } as RequestInit);
      const answer = (await res.json()) as Uploaded;
      return { status: res.status, answer, sha256: sha256(data), ms: Date.now() - started };
    };
    const inFlight = Promise.all(Array.from({ length: 6 }, () => slowUpload()));
    await new Promise((r) => setTimeout(r, 400));
    net.cut('h3');
    const results = await inFlight;
    for (const r of results) {
      expect(r.status, JSON.stringify(r.answer)).toBe(201);
      expect(r.answer.replicas.filter((x) => x.state === 'ok').length).toBeGreaterThanOrEqual(2);
      // Seconds, bounded by the probes seeing node3 offline: not the 120 s commit timeout.
      expect(r.ms).toBeLessThan(30_000);
      await download({ ...r.answer, sha256: r.sha256 });
    }
    console.log(
      `uploads in flight at the cut of h3 answered 201 after ${results.map((r) => r.ms).join(', ')} ms`,
    );
    net.heal('h3');
    await waitFor('node3 online', async () => (await nodeStatus('node3')) === 'online');
    await waitFor(
      'every upload of the cut with 3 ok copies',
      () => allOk(results.map((r) => ({ ...r.answer, sha256: r.sha256 }))),
      45_000,
    );
  });

  it('addNode starts a node outside NODES in a further host, which the gateway does not use', async () => {
    showLogs();
    const host = net.hosts[3]!;
    const node = await cluster.addNode('node4', {
      address: host.address,
      namespace: host.namespace,
    });
    expect(node.url).toBe(`http://${host.address}:${NAMESPACE_NODE_PORT}`);
    expect(cluster.nodes.map((n) => n.id)).toContain('node4');
    expect(netNamespaceOf(node.proc!.proc.pid!)).toBe(
      statSync(`/var/run/netns/${host.namespace}`).ino,
    );
    const health = (await (await fetch(`${node.url}/health`)).json()) as { id: string };
    expect(health.id).toBe('node4');
    expect(await nodeStatus('node4')).toBeUndefined();
    // A restart of it does not wait for the gateway either.
    await cluster.kill('node4');
    await cluster.startNode('node4');
    expect(((await (await fetch(`${node.url}/health`)).json()) as { id: string }).id).toBe('node4');
    const file = await upload();
    expect(file.replicas.map((r) => r.node).sort()).toEqual(['node1', 'node2', 'node3']);
  });
});

/** The root namespace's IPv4 addresses but loopback. */
function rootAddresses(): string[] {
  const out = spawnSync('ip', ['-j', '-4', 'addr'], { encoding: 'utf8' }).stdout;
  return (JSON.parse(out) as { ifname: string; addr_info?: { local: string }[] }[])
    .filter((l) => l.ifname !== 'lo')
    .flatMap((l) => (l.addr_info ?? []).map((a) => a.local));
}

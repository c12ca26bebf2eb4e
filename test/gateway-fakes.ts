/**
 * Fakes of what the gateway reaches across processes, for the gateway app
 * built in a test's process (test/in-process-gateway.ts): the storage nodes
 * (blobs in memory, faults on demand), the node registry, the replicator, the
 * download counter, the job queue and Redis. Each implements the small
 * interface the handlers call (GatewayNodeClient, NodeStates, Replication,
 * DownloadGrants, JobPublisher) and keeps the rule the real one keeps where a
 * test depends on it.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { Redis } from 'ioredis';
import type { Dispatcher } from 'undici';
import type { JobPublisher } from '../shared/amqp.js';
import type { GatewayConfig, NodeAddress } from '../shared/config.js';
import { UnavailableError } from '../shared/errors.js';
import { topologyNames } from '../shared/jobs.js';
import type { MetadataStore } from '../shared/metadata-store.js';
import { NodeBusyError, type GatewayNodeClient } from '../shared/node-client.js';
import {
  H,
  type NodeHealth,
  type ReplicaOutcome,
  type ScrubStarted,
} from '../shared/node-protocol.js';
import { writeChain } from '../shared/placement.js';
import type { NodeStates, NodeStatus, NodeView } from '../gateway/cluster/node-registry.js';
import type { Replication } from '../gateway/cluster/replicator.js';
import {
  applyBatch,
  type CountedFile,
  type DownloadGrants,
  type Grant,
} from '../gateway/download/download-counter.js';

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The chunk size a fake node sends a blob in (a file of several chunks can fail mid-stream). */
const CHUNK = 4096;

/**
 * How a fake node answers a read: `down` refuses the connection (health
 * too); `cut` sends its first chunk, then drops the connection, as a node
 * does whose copy fails its checksum mid-stream (its health still answers).
 */
export type NodeFault = 'down' | 'cut';

/** The storage nodes, as the gateway's node client sees them: blobs in memory, faults on demand. */
export class FakeNodes implements GatewayNodeClient {
  /** Each node's blobs, by key. */
  readonly blobs = new Map<string, Map<string, Buffer>>();
  /** Nodes answering reads with a fault. */
  readonly faults = new Map<string, NodeFault>();
  /** Nodes with every read connection busy (NODE_READ_CONNECTIONS reads in flight). */
  readonly full = new Set<string>();
  /** Nodes that say they checked each byte before sending it (H.verified); the others do not. */
  readonly verifying = new Set<string>();

  // Resumable uploads are tested against real nodes (test/resumable-uploads.test.ts).
  putBlob(): never {
    throw new Error('FakeNodes: no writes');
  }
  deleteBlob(): never {
    throw new Error('FakeNodes: no deletes');
  }
  compose(): never {
    throw new Error('FakeNodes: no compose');
  }
  commitStaged(): never {
    throw new Error('FakeNodes: no staged uploads');
  }
  cutStaged(): never {
    throw new Error('FakeNodes: no staged uploads');
  }
  deleteStaged(): never {
    throw new Error('FakeNodes: no staged uploads');
  }
  /** Every read a node was asked for, in order. */
  readonly reads: { node: string; key: string; range?: string }[] = [];
  private readonly inFlight = new Map<string, number>();

  constructor(nodes: NodeAddress[]) {
    for (const n of nodes) this.blobs.set(n.id, new Map());
  }

  /** The nodes holding blob `key`. */
  holders(key: string): string[] {
    return [...this.blobs].filter(([, blobs]) => blobs.has(key)).map(([node]) => node);
  }

  readsInFlight(node: NodeAddress): number {
    return this.inFlight.get(node.id) ?? 0;
  }

  readsFull(node: NodeAddress): boolean {
    return this.full.has(node.id);
  }

  async getBlob(
    target: NodeAddress,
    key: string,
    o: { range?: string; signal?: AbortSignal } = {},
  ): Promise<Dispatcher.ResponseData> {
    if (this.readsFull(target)) throw new NodeBusyError(target.id, 1);
    this.reads.push({ node: target.id, key, range: o.range });
    if (this.faults.get(target.id) === 'down') throw refused(target);
    const bytes = this.blobs.get(target.id)?.get(key);
    if (!bytes) return response(404, {}, Readable.from([Buffer.from('{}')], { objectMode: false }));
    const range = byteRange(o.range);
    const part = range ? bytes.subarray(range.start, range.end + 1) : bytes;
    const headers: Record<string, string> = { 'content-length': String(part.length) };
    if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${bytes.length}`;
    if (this.verifying.has(target.id)) headers[H.verified] = 'before-send';
    const chunks = [];
    for (let at = 0; at < part.length; at += CHUNK) chunks.push(part.subarray(at, at + CHUNK));
    const body =
      this.faults.get(target.id) === 'cut'
        ? cutAfterFirst(chunks)
        : Readable.from(chunks, { objectMode: false });
    // In flight until the body is done with, as NodeClient counts them.
    this.inFlight.set(target.id, this.readsInFlight(target) + 1);
    body.once('close', () => this.inFlight.set(target.id, this.readsInFlight(target) - 1));
    return response(range ? 206 : 200, headers, body);
  }

  async health(target: NodeAddress): Promise<NodeHealth> {
    if (this.faults.get(target.id) === 'down') throw refused(target);
    const blobs = [...(this.blobs.get(target.id)?.values() ?? [])];
    const bytes = blobs.reduce((sum, b) => sum + b.length, 0);
    return {
      id: target.id,
      status: 'ok',
      objects: blobs.length,
      bytes,
      free_bytes: 1e9,
      total_bytes: 1e9 + bytes,
      uptime_s: 60,
    };
  }

  async statBlob(target: NodeAddress, key: string) {
    const bytes = this.blobs.get(target.id)?.get(key);
    return bytes && { sha256: sha256(bytes), size: bytes.length };
  }

  async startScrub(target: NodeAddress): Promise<ScrubStarted> {
    return { id: target.id, started: true, scrub: null };
  }
}

/** What NodeClient throws for a node that is down. */
function refused(node: NodeAddress): Error {
  return Object.assign(new Error(`connect ECONNREFUSED ${node.url}`), { code: 'ECONNREFUSED' });
}

/** `bytes=a-b`, the only form the gateway asks a node for. */
function byteRange(header: string | undefined): { start: number; end: number } | undefined {
  const match = header && /^bytes=(\d+)-(\d+)$/.exec(header);
  return match ? { start: Number(match[1]), end: Number(match[2]) } : undefined;
}

/** The first chunk, then the connection drops (undici's error for a socket closed mid-body). */
function cutAfterFirst(chunks: Buffer[]): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (sent) {
        const err = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
        return this.destroy(err);
      }
      sent = true;
      this.push(chunks[0]);
    },
  });
}

/** A node's answer as undici gives it; the gateway reads its status, headers and body (and may dump() it). */
function response(
  statusCode: number,
  headers: Record<string, string>,
  body: Readable,
): Dispatcher.ResponseData {
  Object.assign(body, { dump: async () => void body.destroy() });
  return {
    statusCode,
    headers,
    body,
    trailers: {},
    opaque: null,
    context: {},
  } as unknown as Dispatcher.ResponseData;
}

/**
 * Which nodes are up, as the test sets them (all online at first). Failures
 * requests report are recorded; they change no state, unlike NodeRegistry's.
 */
export class FakeRegistry implements NodeStates {
  readonly status = new Map<string, NodeStatus>();
  /** The nodes a request reported failed, in order. */
  readonly failures: string[] = [];

  constructor(private readonly nodes: NodeAddress[]) {
    for (const n of nodes) this.status.set(n.id, 'online');
  }

  all(): NodeView[] {
    return this.nodes.map((n) => ({
      ...n,
      status: this.status.get(n.id)!,
      lastSeen: 0,
      lastError: null,
      latencyMs: 1,
      objects: null,
      bytes: null,
      freeBytes: null,
      failures: 0,
      scrub: null,
    }));
  }

  isOnline(id: string): boolean {
    return this.status.get(id) === 'online';
  }

  onlineCount(): number {
    return [...this.status.values()].filter((s) => s === 'online').length;
  }

  reportFailure(id: string): void {
    this.failures.push(id);
  }

  reportSuccess(): void {}
}

/**
 * Replicated writes, without the chain: a write consumes the upload's stream
 * (failing as it fails: 413, a client gone), hashes it, and stores the bytes
 * on every node of the chain but those in `failing`, which answer a failed
 * outcome as a node with a full disk does.
 */
export class FakeReplicator implements Replication {
  /** Nodes whose copy fails. */
  readonly failing = new Set<string>();

  constructor(
    private readonly nodes: FakeNodes,
    private readonly registry: FakeRegistry,
    private readonly addresses: NodeAddress[],
    private readonly replication: GatewayConfig['replication'],
  ) {}

  chainFor(key: string, exclude: ReadonlySet<string> = new Set()): NodeAddress[] {
    const usable = this.addresses.filter((n) => !exclude.has(n.id) && this.registry.isOnline(n.id));
    const chain = writeChain(key, usable, this.replication.replicationFactor);
    if (chain.length < this.replication.writeQuorum)
      throw new UnavailableError(
        `only ${chain.length} storage node(s) online; an upload needs ${this.replication.writeQuorum}`,
        'NOT_ENOUGH_NODES',
      );
    return chain;
  }

  async write(key: string, chain: NodeAddress[], body: Readable): Promise<ReplicaOutcome[]> {
    const bytes = await buffer(body);
    const hash = sha256(bytes);
    return chain.map((n): ReplicaOutcome => {
      if (this.failing.has(n.id)) return { node: n.id, ok: false, error: 'disk full' };
      this.nodes.blobs.get(n.id)!.set(key, bytes);
      return { node: n.id, ok: true, sha256: hash, size: bytes.length };
    });
  }

  async rewrite(
    placementKey: string,
    key: string,
    open: () => Readable,
    failed: Set<string>,
    reached: Set<NodeAddress>,
  ) {
    const chain = this.chainFor(placementKey, failed);
    for (const n of chain) reached.add(n);
    return { chain, outcomes: await this.write(key, chain, open()) };
  }

  placementOutcome(_key: string, chain: NodeAddress[], stored: Set<string>) {
    return chain.map((n) => ({
      node: n.id,
      state: stored.has(n.id) ? ('ok' as const) : ('missing' as const),
    }));
  }

  async deleteFrom(key: string, nodes: NodeAddress[] = this.addresses): Promise<string[]> {
    for (const n of nodes) this.nodes.blobs.get(n.id)?.delete(key);
    return [];
  }
}

/**
 * Download grants by the real counter's rule (`applyBatch`: grant while
 * used < max, a give-back frees one) on the file's durable count in the
 * store, one operation at a time: the Redis cache and lock only matter
 * across gateways.
 */
export class FakeCounter implements DownloadGrants {
  takes = 0;
  givenBack = 0;
  /** Fails every operation, as the real counter does while Redis does not answer. */
  unavailable = false;
  private last: Promise<unknown> = Promise.resolve();

  constructor(private readonly store: MetadataStore) {}

  take(file: CountedFile): Promise<Grant> {
    this.takes++;
    return this.settle(file, 'take');
  }

  async giveBack(file: CountedFile): Promise<void> {
    this.givenBack++;
    await this.settle(file, 'return');
  }

  private settle(file: CountedFile, kind: 'take' | 'return'): Promise<Grant> {
    const next = this.last.then(async () => {
      if (this.unavailable)
        throw new UnavailableError('the download counter is unavailable', 'COUNTER_UNAVAILABLE');
      const take = kind === 'take' ? 1 : 0;
      const counts = await this.store.grantDownloads(file.id, take, 1 - take);
      return applyBatch(counts?.before ?? file.maxDownloads, file.maxDownloads, [{ kind }])
        .grants[0]!;
    });
    this.last = next.catch(() => undefined);
    return next;
  }
}

/** The job queue: records what is published. */
export class FakeJobs implements JobPublisher {
  readonly names: ReturnType<typeof topologyNames>;
  connected = true;
  readonly published: { queue: string; body: object; due?: number }[] = [];

  constructor(prefix: string) {
    this.names = topologyNames(prefix);
  }

  async publish(queue: string, body: object, opts: { due?: number } = {}): Promise<void> {
    this.published.push({ queue, body, due: opts.due });
  }

  async depth(): Promise<number> {
    return 0;
  }

  /** The bodies published to `queue`, in order. */
  to(queue: string): object[] {
    return this.published.filter((p) => p.queue === queue).map((p) => p.body);
  }
}

/**
 * Redis as the routes tested in-process use it: the repair queue's marks
 * (SET NX, DEL), /ready's PING, /api/cluster's repair stats, and script
 * definitions (never run: loopback clients are not rate limited). Any other
 * command throws, naming itself, so a route that starts using one fails
 * loudly in its test. Upload links (Redis scripts) are left to the multi-process tests.
 */
export function fakeRedis(): Redis {
  const keys = new Map<string, string>();
  const commands: Record<string, unknown> = {
    status: 'ready',
    defineCommand: () => undefined,
    ping: async () => 'PONG',
    get: async (key: string) => keys.get(key) ?? null,
    set: async (key: string, value: string, ...args: unknown[]) => {
      if (args.includes('NX') && keys.has(key)) return null;
      keys.set(key, String(value));
      return 'OK';
    },
    del: async (...names: string[]) => names.filter((k) => keys.delete(k)).length,
    hgetall: async () => ({}),
  };
  return new Proxy(commands, {
    get(target, name) {
      if (typeof name !== 'string' || name in target) return target[name as string];
      return () => {
        throw new Error(`Redis ${name} is not faked in test/in-process-gateway.ts`);
      };
    },
  }) as unknown as Redis;
}

/**
 * Client of the storage-node API, used by the gateway, by nodes forwarding
 * down the chain, and by workers. Keep-alive undici Pools per node; every
 * request carries the cluster secret, and the current request id when there
 * is one (shared/request-context.ts). The protocol it speaks (headers, the
 * chain format, the answers' shapes) is in shared/node-protocol.ts.
 *
 * A Pool queues a request beyond its connections without limit, and none of
 * undici's timeouts runs while it waits there (headersTimeout starts once the
 * request is on a socket). A blob read holds its connection until its body is
 * consumed, which for a download is the client's whole transfer: a few slow
 * downloaders could hold every connection to a node, and everything behind
 * them would wait. So a node gets three pools: one for health probes (a probe
 * measures the node, never our own queue), one for writes and the other short
 * requests, and, when `readConnections` is set (the gateway), one for blob
 * reads that refuses a read with NodeBusyError instead of queueing it.
 */
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { NodeAddress } from './config.js';
import { TroveError } from './errors.js';
import {
  H,
  formatChain,
  parseComposeAnswer,
  parsePutReport,
  parseStagingCommitAnswer,
  type StagedPart,
  type StagingCommitRequest,
  type StagingCommitResult,
  type StagingListing,
  type BlobListing,
  type ComposeRequest,
  type ComposeResult,
  type NodeHealth,
  type PutReport,
  type ScrubStarted,
} from './node-protocol.js';
import { currentRequestId } from './request-context.js';

/** A node answered with an HTTP error we cannot interpret as a report. */
export class NodeHttpError extends TroveError {
  constructor(
    readonly node: string,
    readonly statusCode: number,
    detail: string,
  ) {
    super('NODE_ERROR', 502, `storage node ${node} answered ${statusCode}: ${detail}`);
  }
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  // Connected but silent past the timeout: as good as down for the request path.
  'UND_ERR_HEADERS_TIMEOUT',
]);

const TRANSPORT = new Set([
  ...UNREACHABLE,
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** The node could not be reached or did not answer at all: route around it until a probe succeeds. */
export function isUnreachable(err: unknown): boolean {
  return UNREACHABLE.has((err as { code?: string } | null)?.code ?? '');
}

/**
 * The exchange failed in transport (unreachable, or the connection dropped):
 * another node may well succeed. A dropped connection alone does not mean the
 * node is down: a node cuts a read short when a blob fails its checksum.
 */
export function isTransportFailure(err: unknown): boolean {
  return TRANSPORT.has((err as { code?: string } | null)?.code ?? '');
}

/**
 * Every read connection to the node is busy; nothing was sent. Another
 * replica may have one free (the gateway tries the next, then answers 503).
 */
export class NodeBusyError extends TroveError {
  constructor(
    readonly node: string,
    limit: number,
  ) {
    super('NODE_BUSY', 503, `storage node ${node} has all ${limit} read connections busy`);
  }
}

export interface NodeClientOptions {
  secret: string;
  /** Connect timeout and time allowed to the first response byte of a read, in ms. */
  timeoutMs: number;
  /** Time allowed after a write's body is sent for the node and its chain to commit, in ms. */
  commitTimeoutMs?: number;
  /**
   * Time allowed for a compose's answer, in ms (default 120 s): the node reads
   * and writes the whole blob (256 MiB at most for an upload) before answering.
   */
  composeTimeoutMs?: number;
  /** Connections per node for writes and the other short requests (and reads, without `readConnections`). */
  connections?: number;
  /**
   * Blob reads in flight to one node at most, on a pool of their own with as
   * many connections; a read beyond them is refused at once (NodeBusyError).
   * Unset, reads share the pool of the other requests and queue in it (the
   * worker, whose prefetch bounds its reads).
   */
  readConnections?: number;
}

export interface PutOptions {
  /** Nodes after `target` in the chain; the target forwards to them. */
  chain: NodeAddress[];
  expectedSha256?: string;
  contentLength?: number;
  /** 0 when sent by the gateway; each forward adds one. */
  hop: number;
  signal?: AbortSignal;
  /** A part of staged upload `key` at this offset (PUT /staging/:key?offset=N), not a blob. */
  offset?: number;
}

type Lane = 'probe' | 'read' | 'other';

/**
 * The node client as the gateway's request handlers use it: blob reads and
 * the load they put on each node, health, stat and scrub. NodeClient is one;
 * a test may pass a fake (test/in-process-gateway.ts).
 */
export interface GatewayNodeClient {
  readsInFlight(node: NodeAddress): number;
  readsFull(node: NodeAddress): boolean;
  getBlob(
    target: NodeAddress,
    key: string,
    o?: { range?: string; signal?: AbortSignal },
  ): Promise<Dispatcher.ResponseData>;
  health(target: NodeAddress, timeoutMs?: number): Promise<NodeHealth>;
  statBlob(target: NodeAddress, key: string): Promise<{ sha256: string; size: number } | undefined>;
  startScrub(target: NodeAddress): Promise<ScrubStarted>;
  /** Resumable uploads: parts copied to a node that lacks one, composed, and removed. */
  putBlob(
    target: NodeAddress,
    key: string,
    body: Readable | Buffer,
    o: PutOptions,
  ): Promise<PutReport>;
  deleteBlob(target: NodeAddress, key: string, signal?: AbortSignal): Promise<boolean>;
  compose(target: NodeAddress, key: string, parts: string[]): Promise<ComposeResult>;
  /** Resumable (tus) uploads: staged parts made a blob, or removed. */
  commitStaged(
    target: NodeAddress,
    key: string,
    blob: string,
    parts: StagedPart[],
  ): Promise<StagingCommitResult>;
  cutStaged(target: NodeAddress, key: string, offset: number): Promise<void>;
  deleteStaged(target: NodeAddress, key: string): Promise<boolean>;
}

export class NodeClient implements GatewayNodeClient {
  private readonly pools = new Map<string, Pool>();
  /** Blob reads in flight, by node URL: from dispatch until the body ended or was destroyed. */
  private readonly reads = new Map<string, number>();

  constructor(private readonly opts: NodeClientOptions) {}

  /** Blob reads this client has in flight to `node` (each holds one connection). */
  readsInFlight(node: NodeAddress): number {
    return this.reads.get(node.url) ?? 0;
  }

  /** Whether a blob read from `node` would be refused now: every read connection is busy. */
  readsFull(node: NodeAddress): boolean {
    const limit = this.opts.readConnections;
    return limit !== undefined && this.readsInFlight(node) >= limit;
  }

  /** PUTs `body` (a stream, or bytes already in memory: no stream is made for them). */
  async putBlob(
    target: NodeAddress,
    key: string,
    body: Readable | Buffer,
    o: PutOptions,
  ): Promise<PutReport> {
    const headers: Record<string, string> = {
      ...this.headers(),
      'content-type': 'application/octet-stream',
      [H.chain]: formatChain(o.chain),
      [H.hop]: String(o.hop),
    };
    if (o.expectedSha256) headers[H.sha256] = o.expectedSha256;
    if (o.contentLength !== undefined) headers['content-length'] = String(o.contentLength);
    const path =
      o.offset === undefined
        ? `/blobs/${encodeURIComponent(key)}`
        : `/staging/${encodeURIComponent(key)}?offset=${o.offset}`;
    const res = await this.pool(target.url).request({
      method: 'PUT',
      path,
      headers,
      body,
      signal: o.signal,
      headersTimeout: this.commitTimeout(body, o.chain.length),
      bodyTimeout: this.opts.timeoutMs,
    });
    const text = await res.body.text();
    const report = parsePutReport(key, text);
    if (!report) throw new NodeHttpError(target.id, res.statusCode, text.slice(0, 200));
    return report;
  }

  /**
   * How long a PUT may wait for its answer after its last byte went out (undici
   * restarts the clock when the body ends). Bytes already in memory are sent
   * at once, so the wait is the commits down the chain: a node timeout for
   * each hop, doubled for a dead successor's connect timeout and the replay
   * past it, so each hop's budget outlasts the next one's. A peer cut off on
   * a kept-alive connection then costs seconds, not the two minutes a stream
   * gets (a stream's clock also runs while its sender is slow, see undici's
   * headersTimeout, so it cannot be short).
   */
  private commitTimeout(body: Readable | Buffer, successors: number): number {
    if (!Buffer.isBuffer(body)) return this.opts.commitTimeoutMs ?? 120_000;
    return this.opts.timeoutMs * 2 * (successors + 1);
  }

  /**
   * GET a blob; the caller owns `body` and must consume or destroy it: the
   * read counts as in flight (and holds its connection) until then. Throws
   * NodeBusyError, before sending anything, when the node's read connections
   * are all busy.
   */
  async getBlob(
    target: NodeAddress,
    key: string,
    o: { range?: string; signal?: AbortSignal } = {},
  ): Promise<Dispatcher.ResponseData> {
    if (this.readsFull(target)) throw new NodeBusyError(target.id, this.opts.readConnections!);
    const headers: Record<string, string> = this.headers();
    if (o.range) headers.range = o.range;
    const done = this.readStarted(target.url);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool(target.url, this.opts.readConnections ? 'read' : 'other').request({
        method: 'GET',
        path: `/blobs/${encodeURIComponent(key)}`,
        headers,
        signal: o.signal,
        headersTimeout: this.opts.timeoutMs,
        bodyTimeout: this.opts.timeoutMs,
      });
    } catch (err) {
      done();
      throw err;
    }
    // 'close' follows the end, a destroy and an error alike (autoDestroy), and dump() too.
    if (res.body.closed) done();
    else res.body.once('close', done);
    return res;
  }

  /**
   * Asks `target` to compose blob `key` from `parts` on its own disk, in order
   * (`POST /blobs/:key/compose`). Resolves `{ ok: false, missing }` when the
   * node lacks some of them (nothing stored); throws NodeHttpError for any
   * other refusal (a sha256 other than `sha256`: 422 SHA256_MISMATCH).
   */
  async compose(
    target: NodeAddress,
    key: string,
    parts: string[],
    o: { sha256?: string; signal?: AbortSignal } = {},
  ): Promise<ComposeResult> {
    const request: ComposeRequest = { parts, ...(o.sha256 && { sha256: o.sha256 }) };
    const timeout = this.opts.composeTimeoutMs ?? 120_000;
    const res = await this.pool(target.url).request({
      method: 'POST',
      path: `/blobs/${encodeURIComponent(key)}/compose`,
      headers: { ...this.headers(), 'content-type': 'application/json' },
      body: JSON.stringify(request),
      signal: o.signal,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    const text = await res.body.text();
    const result = parseComposeAnswer(res.statusCode, text);
    if (!result) throw new NodeHttpError(target.id, res.statusCode, text.slice(0, 200));
    return result;
  }

  /**
   * Asks `target` to make its staged bytes of `key`, which must be `parts`,
   * blob `blob` (`POST /staging/:key/commit`). Resolves `{ ok: false, have }`
   * when they are not those parts (nothing committed); throws NodeHttpError
   * for any other refusal.
   */
  async commitStaged(
    target: NodeAddress,
    key: string,
    blob: string,
    parts: StagedPart[],
  ): Promise<StagingCommitResult> {
    const request: StagingCommitRequest = { blob, parts };
    const timeout = this.opts.composeTimeoutMs ?? 120_000;
    const res = await this.pool(target.url).request({
      method: 'POST',
      path: `/staging/${encodeURIComponent(key)}/commit`,
      headers: { ...this.headers(), 'content-type': 'application/json' },
      body: JSON.stringify(request),
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    const text = await res.body.text();
    const result = parseStagingCommitAnswer(res.statusCode, text);
    if (!result) throw new NodeHttpError(target.id, res.statusCode, text.slice(0, 200));
    return result;
  }

  /** Cuts staged upload `key` on `target` back to `offset` bytes (a part that did not count). */
  async cutStaged(target: NodeAddress, key: string, offset: number): Promise<void> {
    const path = `/staging/${encodeURIComponent(key)}/cut?offset=${offset}`;
    await this.exchange(target, 'POST', path, [204]);
  }

  /** Removes staged upload `key` from `target`; false when it had none. */
  async deleteStaged(target: NodeAddress, key: string): Promise<boolean> {
    const path = `/staging/${encodeURIComponent(key)}`;
    return (await this.exchange(target, 'DELETE', path, [204, 404])).status === 204;
  }

  /** The staged uploads `target` holds. */
  async listStaged(target: NodeAddress): Promise<StagingListing['staged']> {
    const { text } = await this.exchange(target, 'GET', '/staging', [200]);
    return (JSON.parse(text) as StagingListing).staged;
  }

  /** One page of a node's blobs (key order); `next` is the cursor of the following page. */
  async listBlobs(
    target: NodeAddress,
    after: string | undefined,
    limit = 1000,
  ): Promise<BlobListing> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (after) query.set('after', after);
    const { text } = await this.exchange(target, 'GET', `/blobs?${query}`, [200]);
    return JSON.parse(text) as BlobListing;
  }

  async deleteBlob(target: NodeAddress, key: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.pool(target.url).request({
      method: 'DELETE',
      path: `/blobs/${encodeURIComponent(key)}`,
      headers: this.headers(),
      signal,
      headersTimeout: this.opts.timeoutMs,
    });
    await res.body.dump();
    if (res.statusCode !== 204 && res.statusCode !== 404) {
      throw new NodeHttpError(target.id, res.statusCode, 'delete failed');
    }
    return res.statusCode === 204;
  }

  async health(target: NodeAddress, timeoutMs = this.opts.timeoutMs): Promise<NodeHealth> {
    const res = await this.pool(target.url, 'probe').request({
      method: 'GET',
      path: '/health',
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200)
      throw new NodeHttpError(target.id, res.statusCode, text.slice(0, 200));
    return JSON.parse(text) as NodeHealth;
  }

  /** HEAD a blob: its sha256 and size, or undefined when the node does not have it. */
  async statBlob(
    target: NodeAddress,
    key: string,
  ): Promise<{ sha256: string; size: number } | undefined> {
    const res = await this.pool(target.url).request({
      method: 'HEAD',
      path: `/blobs/${encodeURIComponent(key)}`,
      headers: this.headers(),
      headersTimeout: this.opts.timeoutMs,
    });
    await res.body.dump();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw new NodeHttpError(target.id, res.statusCode, 'stat failed');
    return {
      sha256: String(res.headers[H.sha256] ?? ''),
      size: Number(res.headers['content-length']),
    };
  }

  /** Asks a node to start a scrub pass now (`POST /scrub`); answers the node's report. */
  async startScrub(target: NodeAddress): Promise<ScrubStarted> {
    const { text } = await this.exchange(target, 'POST', '/scrub', [202]);
    return JSON.parse(text) as ScrubStarted;
  }

  /**
   * A short request without a body, answered whole: its status and text;
   * NodeHttpError for a status not in `expected`.
   */
  private async exchange(
    target: NodeAddress,
    method: Dispatcher.HttpMethod,
    path: string,
    expected: number[],
  ): Promise<{ status: number; text: string }> {
    const res = await this.pool(target.url).request({
      method,
      path,
      headers: this.headers(),
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
    });
    const text = await res.body.text();
    if (!expected.includes(res.statusCode))
      throw new NodeHttpError(target.id, res.statusCode, text.slice(0, 200));
    return { status: res.statusCode, text };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }

  /** The cluster secret, and the request id of the work in hand (if any). */
  private headers(): Record<string, string> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.opts.secret}` };
    const requestId = currentRequestId();
    if (requestId !== undefined) headers[H.requestId] = requestId;
    return headers;
  }

  /** Counts a read to `url` as in flight; the function returned ends it (once, however often called). */
  private readStarted(url: string): () => void {
    this.reads.set(url, (this.reads.get(url) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.reads.set(url, this.reads.get(url)! - 1);
    };
  }

  private pool(url: string, lane: Lane = 'other'): Pool {
    const name = `${lane} ${url}`;
    let pool = this.pools.get(name);
    if (!pool) {
      // Probes get a pool of their own to stay apart, not to be limited: as many as the others.
      const connections =
        lane === 'read' ? this.opts.readConnections : (this.opts.connections ?? 128);
      pool = new Pool(url, {
        connections,
        connect: { timeout: this.opts.timeoutMs },
        keepAliveTimeout: 30_000,
      });
      this.pools.set(name, pool);
    }
    return pool;
  }
}

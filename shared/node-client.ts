/**
 * Client of the storage-node API, used by the gateway, by nodes forwarding
 * down the chain, and by workers. One keep-alive undici Pool per node; every
 * request carries the cluster secret, and the current request id when there
 * is one (shared/request-context.ts).
 */
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { NodeAddress } from './config.js';
import { TroveError } from './errors.js';
import { REQUEST_ID_HEADER, currentRequestId } from './request-context.js';

/** Headers of the internal protocol. */
export const H = {
  chain: 'x-trove-chain',
  hop: 'x-trove-hop',
  sha256: 'x-trove-sha256',
  /** The id of the request or job in hand, so the node logs under it too. */
  requestId: REQUEST_ID_HEADER,
} as const;

/** What one node did with a replicated write. */
export type ReplicaOutcome =
  | { node: string; ok: true; sha256: string; size: number }
  | { node: string; ok: false; code?: string; error: string };

/** A chain's answer to PUT /blobs/:key: one outcome per node it was given. */
export interface PutReport {
  key: string;
  replicas: ReplicaOutcome[];
}

export interface NodeHealth {
  id: string;
  objects: number;
  bytes: number;
  free_bytes: number;
  total_bytes: number;
}

/** A blob as a node lists it. */
export interface ListedBlob {
  key: string;
  size: number;
  sha256: string;
  mtimeMs: number;
}

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

export function formatChain(chain: NodeAddress[]): string {
  return chain.map((n) => `${n.id}=${n.url}`).join(',');
}

export function parseChain(header: string | undefined): NodeAddress[] | undefined {
  if (!header) return [];
  const chain: NodeAddress[] = [];
  for (const entry of header.split(',')) {
    const eq = entry.indexOf('=');
    const id = entry.slice(0, eq).trim();
    const url = entry.slice(eq + 1).trim();
    if (eq <= 0 || !/^[A-Za-z0-9_-]{1,64}$/.test(id) || !/^https?:\/\/[^\s/]+$/.test(url))
      return undefined;
    chain.push({ id, url });
  }
  return chain;
}

export interface NodeClientOptions {
  secret: string;
  /** Connect timeout and time allowed to the first response byte of a read, in ms. */
  timeoutMs: number;
  /** Time allowed after a write's body is sent for the node and its chain to commit, in ms. */
  commitTimeoutMs?: number;
  /** Maximum connections per node. */
  connections?: number;
}

export interface PutOptions {
  /** Nodes after `target` in the chain; the target forwards to them. */
  chain: NodeAddress[];
  expectedSha256?: string;
  contentLength?: number;
  /** 0 when sent by the gateway; each forward adds one. */
  hop: number;
  signal?: AbortSignal;
}

export class NodeClient {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly opts: NodeClientOptions) {}

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
    const res = await this.pool(target.url).request({
      method: 'PUT',
      path: `/blobs/${encodeURIComponent(key)}`,
      headers,
      body,
      signal: o.signal,
      headersTimeout: this.opts.commitTimeoutMs ?? 120_000,
      bodyTimeout: this.opts.timeoutMs,
    });
    const text = await res.body.text();
    const report = safeJson(text) as Partial<PutReport> | undefined;
    if (!Array.isArray(report?.replicas))
      throw new NodeHttpError(target.id, res.statusCode, text.slice(0, 200));
    return { key, replicas: report.replicas };
  }

  /** GET a blob; the caller owns `body` and must consume or destroy it. */
  async getBlob(
    target: NodeAddress,
    key: string,
    o: { range?: string; signal?: AbortSignal } = {},
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = this.headers();
    if (o.range) headers.range = o.range;
    return this.pool(target.url).request({
      method: 'GET',
      path: `/blobs/${encodeURIComponent(key)}`,
      headers,
      signal: o.signal,
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
    });
  }

  /** One page of a node's blobs (key order); `next` is the cursor of the following page. */
  async listBlobs(
    target: NodeAddress,
    after: string | undefined,
    limit = 1000,
  ): Promise<{ blobs: ListedBlob[]; next: string | null }> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (after) query.set('after', after);
    const res = await this.pool(target.url).request({
      method: 'GET',
      path: `/blobs?${query}`,
      headers: this.headers(),
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200)
      throw new NodeHttpError(target.id, res.statusCode, text.slice(0, 200));
    return JSON.parse(text) as { blobs: ListedBlob[]; next: string | null };
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
    const res = await this.pool(target.url).request({
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
  async startScrub(target: NodeAddress): Promise<{ started: boolean; scrub: unknown }> {
    const res = await this.pool(target.url).request({
      method: 'POST',
      path: '/scrub',
      headers: this.headers(),
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
    });
    const text = await res.body.text();
    if (res.statusCode !== 202)
      throw new NodeHttpError(target.id, res.statusCode, text.slice(0, 200));
    return JSON.parse(text) as { started: boolean; scrub: unknown };
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

  private pool(url: string): Pool {
    let pool = this.pools.get(url);
    if (!pool) {
      pool = new Pool(url, {
        connections: this.opts.connections ?? 128,
        connect: { timeout: this.opts.timeoutMs },
        keepAliveTimeout: 30_000,
      });
      this.pools.set(url, pool);
    }
    return pool;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

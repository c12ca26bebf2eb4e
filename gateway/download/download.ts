/**
 * GET/HEAD /download/:id (the original, or `?variant=compressed`) and
 * GET/HEAD /files/:id/thumbnail: metadata from SQLite, bytes streamed from
 * the first replica of the blob that can serve them.
 *
 * Replicas are tried in read order (read-order.ts): online nodes with the
 * fewest reads in flight first, nodes with every read connection busy never
 * (503 NODES_BUSY at once when that is all of them). The gateway
 * waits for a node's first body byte before sending its own status line, so a
 * node that refuses, times out, or fails before that byte (a small corrupt
 * blob fails its checksum before any byte) costs the client nothing: the
 * next replica serves. A node that fails after it is handed on to the next
 * replicas in read order, from the first byte not yet sent (resumable-read.ts);
 * a whole-file read is checked against the file's sha256 before its last chunk
 * goes out.
 */
import type { Readable } from 'node:stream';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { NodeAddress } from '../../shared/config.js';
import { GoneError, NotFoundError, UnavailableError } from '../../shared/errors.js';
import { fileIdOf, isValidFileId } from '../../shared/keys.js';
import type { Logger } from '../../shared/logger.js';
import type { FileRecord, MetadataStore } from '../../shared/metadata-store.js';
import {
  isUnreachable,
  NodeBusyError,
  NodeHttpError,
  type NodeClient,
} from '../../shared/node-client.js';
import { contentRange, parseRange, type ByteRange } from '../../shared/range.js';
import { firstChunk, pipeChain } from '../../shared/streams.js';
import type { JobPublisher } from '../../shared/amqp.js';
import type { DownloadGrants, Grant } from './download-counter.js';
import type { RepairQueue } from '../../shared/repair-queue.js';
import { requestRepair } from '../cluster/repair-requests.js';
import { downloadsLeft, fileStatus } from '../files/file-view.js';
import { contentDisposition } from '../http/http-names.js';
import type { NodeStates } from '../cluster/node-registry.js';
import { rankNodes } from '../../shared/placement.js';
import { readOrder, type ReadOrder, type ReplicaRow } from './read-order.js';
import { disconnectSignal } from '../http/request-signal.js';
import { resumableRead, type Source } from './resumable-read.js';
import { originalBlob, parseVariant, variantBlob, type ServedBlob } from '../files/variants.js';
import type { GatewayMetrics } from '../metrics.js';

export interface DownloadDeps {
  store: MetadataStore;
  client: NodeClient;
  registry: NodeStates;
  counter: DownloadGrants;
  amqp: JobPublisher;
  /** A replica found missing or corrupt is queued for repair here. */
  repairs: RepairQueue;
  nodes: NodeAddress[];
  log: Logger;
  metrics?: Pick<GatewayMetrics, 'downloadStarted' | 'downloadSent' | 'downloadRefused'>;
}

type Ctx = Context<{ Bindings: HttpBindings }>;

/** The committed file behind a public id; 404 for anything else, malformed ids included. */
export async function findFile(store: MetadataStore, id: string | undefined): Promise<FileRecord> {
  const file = id && isValidFileId(id) ? await store.getFile(id) : undefined;
  if (!file || file.state !== 'committed')
    throw new NotFoundError('no such file', 'FILE_NOT_FOUND');
  return file;
}

/** 410 for a file that can no longer be downloaded, naming why. */
export function assertDownloadable(file: FileRecord): void {
  assertNotGone(file);
  if (fileStatus(file) === 'exhausted') throw limitReached();
}

/** 410 for a file that expired or was deleted (its downloads may be used up: that is not gone). */
export function assertNotGone(file: FileRecord): void {
  switch (fileStatus(file)) {
    case 'deleted':
      if (file.deleteReason === 'deleted')
        throw new GoneError('FILE_DELETED', 'this file was deleted by its owner');
      throw new GoneError('FILE_EXPIRED', 'this link has expired');
    case 'expired':
      throw new GoneError('FILE_EXPIRED', 'this link has expired');
    case 'exhausted':
    case 'active':
  }
}

function limitReached(): GoneError {
  return new GoneError('DOWNLOAD_LIMIT_REACHED', 'this link has no downloads left');
}

/**
 * Counting: a GET that will send bytes takes a download before it contacts a
 * node (HEAD, 304 and errors take none). If no replica sends a first byte,
 * or the client leaves before one, the download is given back. Once bytes
 * flow it counts, even if the client aborts mid-stream (docs/api.md).
 */
export async function handleDownload(deps: DownloadDeps, c: Ctx, headOnly: boolean) {
  // Refusals (404, 410: expired, deleted, used up) are counted by code for GET /metrics.
  return download(deps, c, headOnly).catch((err: unknown) => {
    deps.metrics?.downloadRefused(err);
    throw err;
  });
}

async function download(deps: DownloadDeps, c: Ctx, headOnly: boolean) {
  const variant = parseVariant(c.req.query('variant'));
  const file = await findFile(deps.store, c.req.param('id'));
  if (fileStatus(file) === 'exhausted') c.header('x-downloads-left', '0');
  assertDownloadable(file);
  const blob = variant ? await variantBlob(deps.store, file, variant) : originalBlob(file);
  return serveBlob(deps, c, file, blob, { headOnly, counted: true });
}

/** GET/HEAD /files/:id/thumbnail: never counts; 404 NOT_READY until the worker made it. */
export async function handleThumbnail(deps: DownloadDeps, c: Ctx, headOnly: boolean) {
  const file = await findFile(deps.store, c.req.param('id'));
  assertNotGone(file);
  const blob = await variantBlob(deps.store, file, 'thumb');
  return serveBlob(deps, c, file, blob, { headOnly, counted: false });
}

/**
 * Answers a GET or HEAD of `blob` (of `file`): conditional and range
 * requests, then the bytes from its replicas. A `counted` GET takes one of
 * the file's downloads first.
 */
async function serveBlob(
  deps: DownloadDeps,
  c: Ctx,
  file: FileRecord,
  blob: ServedBlob,
  o: { headOnly: boolean; counted: boolean },
) {
  const etag = `"${blob.sha256}"`;
  const headers: Record<string, string> = {
    'content-type': blob.contentType,
    'content-disposition': contentDisposition(
      blob.contentType.startsWith('image/') ? 'inline' : 'attachment',
      blob.name,
    ),
    etag,
    'accept-ranges': 'bytes',
    'cache-control': 'private, no-store',
    'x-content-type-options': 'nosniff',
  };
  if (o.counted) {
    const left = downloadsLeft(file);
    headers['x-downloads-left'] = left === null ? 'unlimited' : String(left);
  }

  if (
    c.req
      .header('if-none-match')
      ?.split(',')
      .some((t) => t.trim() === etag)
  ) {
    return c.body(null, 304, headers);
  }
  // A 416 tells the client the size (RFC 9110 §15.5.17); the error handler keeps headers set here.
  c.header('content-range', `bytes */${blob.size}`);
  const range = parseRange(c.req.header('range'), blob.size);
  c.header('content-range', undefined);
  headers['content-length'] = String(range ? range.end - range.start + 1 : blob.size);
  if (range) headers['content-range'] = contentRange(range, blob.size);
  const statusCode = range ? 206 : 200;
  if (o.headOnly) return c.body(null, statusCode, headers);

  const replicas = await replicaRows(deps, file.id, blob.key);
  // Refused before a download is taken: no counter traffic while the nodes are overloaded.
  const planned = orderOf(deps, blob.key, replicas);
  if (planned.nodes.length === 0) throw unavailable(c, planned.busy.length > 0, headers);

  let grant: Grant | undefined;
  if (o.counted && file.maxDownloads > 0) {
    grant = await deps.counter.take(file);
    if (!grant.granted) {
      c.header('x-downloads-left', '0');
      throw limitReached();
    }
    headers['x-downloads-left'] = String(grant.left);
  }

  const signal = disconnectSignal(c.env.outgoing);
  // Again after the take (it may have waited for a lock): the loads as they are now.
  const order = orderOf(deps, blob.key, replicas);
  let busy = order.busy.length > 0;
  for (const [i, node] of order.nodes.entries()) {
    // Busy nodes last: by a failover mid-stream one of them may have a connection free.
    const rest = [...order.nodes.slice(i + 1), ...order.busy];
    const outcome = await tryServe(deps, c, node, blob, rest, {
      range,
      statusCode,
      headers,
      signal,
    });
    if (outcome === 'served') return RESPONSE_ALREADY_SENT;
    if (outcome === 'busy') busy = true;
    if (signal.aborted) break;
  }
  if (grant) await giveBack(deps, file);
  if (signal.aborted) return RESPONSE_ALREADY_SENT;
  if (grant) headers['x-downloads-left'] = String(grant.left + 1);
  throw unavailable(c, busy, headers);
}

/**
 * The 503 of a read that no replica took: every one busy (or some busy, the
 * rest down), or none reachable. A counted download says what is left, as
 * nothing was taken (or it was given back).
 */
function unavailable(c: Ctx, busy: boolean, headers: Record<string, string>): UnavailableError {
  // The error handler keeps headers set on the context.
  const left = headers['x-downloads-left'];
  if (left !== undefined) c.header('x-downloads-left', left);
  return busy
    ? new UnavailableError(
        'every storage node holding this file is busy with other downloads; try again shortly',
        'NODES_BUSY',
      )
    : new UnavailableError(
        'no storage node holding this file is reachable; try again shortly',
        'NO_REPLICA_AVAILABLE',
      );
}

async function giveBack(deps: DownloadDeps, file: FileRecord): Promise<void> {
  try {
    await deps.counter.giveBack(file);
  } catch (err) {
    deps.log.error(
      { id: file.id, err: (err as Error).message },
      'could not give back a download that served nothing',
    );
  }
}

/** The replica rows of blob `key` (of file `id`). */
async function replicaRows(deps: DownloadDeps, id: string, key: string): Promise<ReplicaRow[]> {
  return (await deps.store.replicasOf(id)).filter((r) => r.key === key);
}

/** The read order of blob `key` now: health from the registry, reads in flight from the client. */
function orderOf(deps: DownloadDeps, key: string, replicas: ReplicaRow[]): ReadOrder {
  return readOrder(rankNodes(key, deps.nodes), replicas, {
    isOnline: (id) => deps.registry.isOnline(id),
    readsInFlight: (node) => deps.client.readsInFlight(node),
    readsFull: (node) => deps.client.readsFull(node),
  });
}

interface ServeOptions {
  range?: ByteRange;
  statusCode: number;
  headers: Record<string, string>;
  signal: AbortSignal;
}

/**
 * Streams the blob from `node`, or from the nodes of `rest` (the rest of the
 * read order) if `node` fails mid-stream: see resumable-read.ts. `served`
 * once the status line is out; `busy` if `node` refused the read for want of
 * a free connection, `failed` if it failed otherwise before its first byte.
 */
async function tryServe(
  deps: DownloadDeps,
  c: Ctx,
  node: NodeAddress,
  blob: ServedBlob,
  rest: NodeAddress[],
  o: ServeOptions,
): Promise<'served' | 'busy' | 'failed'> {
  const key = blob.key;
  let body: Readable | undefined;
  let head: Buffer | null;
  try {
    body = await openBlob(deps, node, key, {
      range: o.range && `bytes=${o.range.start}-${o.range.end}`,
      status: o.range ? 206 : 200,
      signal: o.signal,
    });
    if (!body) return 'failed';
    head = await firstChunk(body);
  } catch (err) {
    body?.destroy();
    return readFailed(deps, node, key, err, o.signal);
  }
  deps.registry.reportSuccess(node.id);

  const span = o.range ?? { start: 0, end: blob.size - 1 };
  // Only a read of the whole blob can be checked against its sha256.
  const verified = span.start === 0 && span.end === blob.size - 1;
  const stream = resumableRead({
    range: span,
    sha256: verified ? blob.sha256 : undefined,
    first: { node, body },
    head,
    next: (from, failed, err) =>
      resume(deps, blob, rest, { from, end: span.end, failed, err, verified, signal: o.signal }),
  });
  const out = c.env.outgoing;
  out.writeHead(o.statusCode, o.headers);
  const sent = pipeChain(stream, out);
  // Counted as they go out; added once piped, so this listener does not start the flow early.
  const metrics = deps.metrics;
  if (metrics) {
    metrics.downloadStarted(key);
    stream.on('data', (chunk: Buffer) => metrics.downloadSent(chunk.length));
  }
  sent.catch((err: Error) => {
    // Headers are gone: a truncated body (short of Content-Length) is the only signal left.
    if (o.signal.aborted) return;
    const corrupt = (err as { code?: string }).code === 'CHECKSUM_MISMATCH';
    deps.log[corrupt ? 'error' : 'warn'](
      { key, err: err.message },
      corrupt ? 'download failed its checksum, cut short' : 'download cut short',
    );
  });
  return 'served';
}

/**
 * A read from `node` failed before its first byte: `busy` when the node had
 * no read connection free (routine under load, so not a warning), else
 * `failed`, the registry told if the node is unreachable.
 */
function readFailed(
  deps: DownloadDeps,
  node: NodeAddress,
  key: string,
  err: unknown,
  signal: AbortSignal,
): 'busy' | 'failed' {
  if (err instanceof NodeBusyError) {
    deps.log.debug({ key, node: node.id }, 'read connections to node all busy, trying the next');
    return 'busy';
  }
  if (isUnreachable(err)) deps.registry.reportFailure(node.id, err);
  if (!signal.aborted)
    deps.log.warn(
      { key, node: node.id, err: (err as Error).message },
      'replica read failed, trying the next',
    );
  return 'failed';
}

/**
 * GETs `key` from `node`: the body if the node answered `status` (and
 * `contentRange`, when given), else undefined, marking a replica the node
 * does not have as missing. Throws what the request throws.
 */
async function openBlob(
  deps: DownloadDeps,
  node: NodeAddress,
  key: string,
  o: { range?: string; status: number; contentRange?: string; signal: AbortSignal },
): Promise<Readable | undefined> {
  const res = await deps.client.getBlob(node, key, { range: o.range, signal: o.signal });
  // Whoever reads the body next also hears of its errors, though maybe a tick late: no crash meanwhile.
  res.body.on('error', () => undefined);
  if (
    res.statusCode === o.status &&
    (o.contentRange === undefined || res.headers['content-range'] === o.contentRange)
  )
    return res.body;
  await res.body.dump();
  if (res.statusCode === 404) await replicaLost(deps, fileIdOf(key), key, node);
  return undefined;
}

/** A replica the metadata counts on is gone (missing, or quarantined as corrupt): record it and queue its repair. */
async function replicaLost(deps: DownloadDeps, fileId: string, key: string, node: NodeAddress) {
  deps.log.warn({ key, node: node.id }, 'replica missing on node; queueing its repair');
  await deps.store.setReplicaState(key, node.id, 'missing');
  void requestRepair(deps, fileId, key);
}

/**
 * `r.failed` broke off after the bytes before `r.from` reached the client: the
 * next node of `rest` that serves [from..end], or undefined to end the
 * download short.
 *
 * A node still up that cut its stream most likely failed its own checksum, so
 * the bytes it already sent may be wrong. A whole-file read carries on anyway
 * (its sha256 is checked before the last chunk goes out); a range cannot be
 * checked here, so it ends short, as the node meant it to.
 */
async function resume(
  deps: DownloadDeps,
  blob: ServedBlob,
  rest: NodeAddress[],
  r: {
    from: number;
    end: number;
    failed: Source;
    err: Error;
    verified: boolean;
    signal: AbortSignal;
  },
): Promise<Source | undefined> {
  if (r.signal.aborted) return undefined; // the client left
  const key = blob.key;
  deps.log.warn(
    { key, node: r.failed.node.id, at: r.from, err: r.err.message },
    'replica failed mid-stream',
  );
  const nodeUp = !isTimeout(r.err) && !(await isDown(deps, r.failed.node, r.err));
  // A node that is up and cut its stream has quarantined its copy (failed checksum): replace it.
  if (nodeUp) await replicaLost(deps, fileIdOf(key), key, r.failed.node);
  if (!r.verified && nodeUp) {
    deps.log.warn(
      { key, node: r.failed.node.id },
      'node is up but cut its stream (failed checksum?): not resuming a range that cannot be verified',
    );
    return undefined;
  }
  const wanted = { start: r.from, end: r.end };
  while (rest.length > 0 && !r.signal.aborted) {
    const node = rest.shift()!;
    try {
      const body = await openBlob(deps, node, key, {
        range: `bytes=${wanted.start}-${wanted.end}`,
        status: 206,
        contentRange: contentRange(wanted, blob.size),
        signal: r.signal,
      });
      if (body) {
        deps.registry.reportSuccess(node.id);
        deps.log.info({ key, node: node.id, from: r.from }, 'download resumed');
        return { node, body };
      }
    } catch (err) {
      readFailed(deps, node, key, err, r.signal);
    }
  }
  return undefined;
}

/** How long a node that broke off a read has to answer a health request to count as up. */
const HEALTH_CHECK_MS = 1000;

/**
 * Whether `node`, which broke off a read with `err`, is down; if it is, the
 * registry hears of it. A dropped connection alone does not tell (a node
 * also cuts a read whose blob fails its checksum), so one health request
 * decides.
 */
async function isDown(deps: DownloadDeps, node: NodeAddress, err: Error): Promise<boolean> {
  if (isUnreachable(err)) {
    deps.registry.reportFailure(node.id, err);
    return true;
  }
  try {
    await deps.client.health(node, HEALTH_CHECK_MS);
    return false;
  } catch (probeErr) {
    // An HTTP error answer means the node is up, if unwell; anything else
    // (refused, reset, timed out) that it is not.
    if (probeErr instanceof NodeHttpError) return false;
    deps.registry.reportFailure(node.id, probeErr);
    return true;
  }
}

function isTimeout(err: Error): boolean {
  return (err as { code?: string }).code === 'UND_ERR_BODY_TIMEOUT';
}

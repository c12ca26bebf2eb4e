/**
 * GET/HEAD /download/:id (the original, or `?variant=compressed`) and
 * GET/HEAD /files/:id/thumbnail: metadata from SQLite, bytes from the
 * gateway's cache of small verified blobs (blob-cache.ts) or streamed from
 * the first replica of the blob that can serve them (replica-reader.ts).
 *
 * This module is the HTTP side: the file's rules (file-rules.ts), ETag and
 * 304, Range and 416, HEAD, the headers, counting a download. The gateway
 * waits for a replica's first body byte before sending its own status line,
 * so a replica that fails before it costs the client nothing.
 */
import type { Readable } from 'node:stream';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { LayoutView } from '../../shared/layout-watcher.js';
import { UnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { FileRecord, MetadataStore } from '../../shared/metadata-store.js';
import type { GatewayNodeClient } from '../../shared/node-client.js';
import { contentRange, ifRangeHolds, parseRange, type ByteRange } from '../../shared/range.js';
import { pipeChain } from '../../shared/streams.js';
import type { JobPublisher } from '../../shared/amqp.js';
import type { DownloadGrants, Grant } from './download-counter.js';
import type { RepairQueue } from '../../shared/repair-queue.js';
import {
  assertDownloadable,
  assertNotGone,
  downloadsLeft,
  fileStatus,
  findFile,
  limitReached,
} from '../files/file-rules.js';
import { contentDisposition } from '../http/http-names.js';
import type { NodeStates } from '../cluster/node-registry.js';
import { disconnectSignal } from '../http/request-signal.js';
import type { BlobCache } from './blob-cache.js';
import type { ResumeGrants } from './resume-grants.js';
import { blobRead } from './replica-reader.js';
import { originalBlob, parseVariant, variantBlob, type ServedBlob } from '../files/variants.js';
import type { GatewayMetrics } from '../metrics.js';

export interface DownloadDeps {
  store: MetadataStore;
  client: GatewayNodeClient;
  registry: NodeStates;
  counter: DownloadGrants;
  amqp: JobPublisher;
  /** A replica found missing or corrupt is queued for repair here. */
  repairs: RepairQueue;
  /** The layout in force (reads go to its nodes). */
  layout: LayoutView;
  /** Small blobs already read and verified, served without a node hop. */
  blobCache: BlobCache;
  /** A resume of a counted download takes none (resume-grants.ts). */
  resumeGrants: Pick<ResumeGrants, 'held' | 'give'>;
  log: Logger;
  metrics?: Pick<
    GatewayMetrics,
    'downloadStarted' | 'downloadSent' | 'downloadRefused' | 'downloadResumed'
  >;
}

type Ctx = Context<{ Bindings: HttpBindings }>;

/**
 * Counting: a GET that will send bytes takes a download before it contacts a
 * node (HEAD, 304 and errors take none). If no replica sends a first byte,
 * or the client leaves before one, the download is given back. Once bytes
 * flow it counts, even if the client aborts mid-stream; and its client gets
 * a grant to resume it: a resume holding one takes nothing, even of a file
 * used up since (docs/api.md).
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
  // A used-up file still serves the resumes of grant holders, which are Range GETs: serveBlob decides.
  if (headOnly || !c.req.header('range')) assertDownloadable(file);
  else assertNotGone(file);
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
 * requests, then the bytes from its replicas (openRead). A `counted` GET takes one of
 * the file's downloads first, unless it resumes one its client holds a grant for.
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
  // A Range under an If-Range of another ETag is ignored: the whole file, 200 (RFC 9110 §13.1.5).
  const range = ifRangeHolds(c.req.header('if-range'), etag)
    ? parseRange(c.req.header('range'), blob.size)
    : undefined;
  c.header('content-range', undefined);
  headers['content-length'] = String(range ? range.end - range.start + 1 : blob.size);
  if (range) headers['content-range'] = contentRange(range, blob.size);
  const statusCode = range ? 206 : 200;
  if (o.headOnly) return c.body(null, statusCode, headers);

  const opened = await openRead(deps, c, file, blob, {
    range,
    counted: o.counted,
    headers,
    cookie: true,
  });
  if (opened) sendOpened(deps, c, blob, opened, { range, statusCode, headers });
  return RESPONSE_ALREADY_SENT;
}

/** The bytes a GET sends: from the gateway's cache (whole blob), or a replica's stream (of the range). */
export type OpenedRead = { cached: Buffer } | { stream: Readable; signal: AbortSignal };

/**
 * Opens the bytes of `blob` (of `file`) for a GET of `range`. A `counted`
 * read of a limited file takes one of its downloads first (DOWNLOAD_LIMIT_REACHED
 * when none is left), unless it resumes one its client holds a grant for,
 * and gives it back if no replica sends a first byte. Once bytes flow, the
 * client gets (or renews) its grant: `headers` gains its Set-Cookie when
 * `cookie` (a grant by address is recorded either way) and the downloads
 * left. Undefined: the client left before any byte (nothing taken).
 * GET /download and the S3 API's presigned GetObject count through here.
 */
export async function openRead(
  deps: DownloadDeps,
  c: Ctx,
  file: FileRecord,
  blob: ServedBlob,
  o: {
    range: ByteRange | undefined;
    counted: boolean;
    headers: Record<string, string>;
    cookie: boolean;
  },
): Promise<OpenedRead | undefined> {
  const { range, headers } = o;
  // A resume by a client holding a grant takes no download, even of a used-up file (which
  // the caller let through for this); any other GET of a used-up file stops here.
  const limited = o.counted && file.maxDownloads > 0;
  const resumed = limited ? await deps.resumeGrants.held(c, file.id, range) : undefined;
  if (limited && !resumed && fileStatus(file) === 'exhausted') throw limitReached();

  const cached = deps.blobCache.get(blob);
  const read = cached ? undefined : await blobRead(deps, file.id, blob);
  // Refused before a download is taken: no counter traffic while the nodes are overloaded.
  const planned = read?.order();
  if (planned && planned.nodes.length === 0) throw unavailable(c, planned.busy.length > 0, headers);

  let grant: Grant | undefined;
  if (limited && !resumed) {
    grant = await deps.counter.take(file);
    if (!grant.granted) {
      c.header('x-downloads-left', '0');
      throw limitReached();
    }
    headers['x-downloads-left'] = String(grant.left);
  }
  // With the first bytes, the client gets (or renews) its grant to resume them.
  const resumable = () => {
    const cookie = grant || resumed ? deps.resumeGrants.give(c, file.id) : undefined;
    if (cookie && o.cookie) headers['set-cookie'] = cookie;
    if (resumed) deps.metrics?.downloadResumed(resumed);
  };

  if (cached) {
    resumable();
    return { cached };
  }
  const signal = disconnectSignal(c.env.outgoing);
  // In read order again after the take (it may have waited for a lock): the loads as they are now.
  const result = await read!.open({ range, signal });
  if ('stream' in result) {
    resumable();
    return { stream: result.stream, signal };
  }
  if (grant) await giveBack(deps, file);
  if (signal.aborted) return undefined;
  if (grant) headers['x-downloads-left'] = String(grant.left + 1);
  throw unavailable(c, result.busy, headers);
}

/** Sends what openRead opened (GET /download and the S3 API's GetObject): `range` of the cached blob, or the replica's stream (a whole one fills the cache). */
export function sendOpened(
  deps: DownloadDeps,
  c: Ctx,
  blob: ServedBlob,
  opened: OpenedRead,
  o: { range: ByteRange | undefined; statusCode: number; headers: Record<string, string> },
): void {
  const { range, statusCode, headers } = o;
  if ('cached' in opened) {
    const bytes = range ? opened.cached.subarray(range.start, range.end + 1) : opened.cached;
    sendCached(deps, c, blob.key, bytes, { statusCode, headers });
    return;
  }
  send(deps, c, blob.key, opened.stream, { statusCode, headers, signal: opened.signal });
  // Only a whole-blob read is kept: it ends only once every byte verified.
  if (!range) deps.blobCache.fillFrom(blob, opened.stream);
}

/** Sends bytes of blob `key` from the gateway's cache, whole, in one write. */
function sendCached(
  deps: DownloadDeps,
  c: Ctx,
  key: string,
  bytes: Buffer,
  o: { statusCode: number; headers: Record<string, string> },
): void {
  const out = c.env.outgoing;
  out.writeHead(o.statusCode, o.headers);
  out.end(bytes);
  deps.metrics?.downloadStarted(key);
  deps.metrics?.downloadSent(bytes.length);
}

/**
 * Sends the status line, `headers` and `stream`, the bytes of blob `key`
 * from its replicas. Once the headers are out a failure can only cut the
 * body short of its Content-Length, so it is logged.
 */
function send(
  deps: DownloadDeps,
  c: Ctx,
  key: string,
  stream: Readable,
  o: { statusCode: number; headers: Record<string, string>; signal: AbortSignal },
): void {
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
}

/**
 * The 503 of a read that no replica took: every one busy (or some busy, the
 * rest down), or none reachable. A counted download says what is left, as
 * nothing was taken (or it was given back).
 */
export function unavailable(
  c: Ctx,
  busy: boolean,
  headers: Record<string, string>,
): UnavailableError {
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

/**
 * GET/HEAD /download/:id: metadata from SQLite, bytes streamed from the first
 * replica that can serve them.
 *
 * Replicas are tried in placement order, online nodes first. The gateway
 * waits for a node's first body byte before sending its own status line, so a
 * node that refuses, times out, or fails before that byte (a small corrupt
 * blob fails its checksum before any byte) costs the client nothing: the
 * next replica serves.
 */
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { NodeAddress } from '../shared/config.js';
import { GoneError, NotFoundError, UnavailableError } from '../shared/errors.js';
import { isValidFileId } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import type { FileRecord, MetadataStore } from '../shared/metadata-store.js';
import { isUnreachable, type NodeClient } from '../shared/node-client.js';
import { contentRange, parseRange, type ByteRange } from '../shared/range.js';
import { firstChunk, pipeChain } from '../shared/streams.js';
import type { DownloadCounter, Grant } from './download-counter.js';
import { downloadsLeft, fileStatus } from './file-view.js';
import { contentDisposition } from './http-names.js';
import type { NodeRegistry } from './node-registry.js';
import { rankNodes } from './placement.js';
import { disconnectSignal } from './request-signal.js';

export interface DownloadDeps {
  store: MetadataStore;
  client: NodeClient;
  registry: NodeRegistry;
  counter: DownloadCounter;
  nodes: NodeAddress[];
  log: Logger;
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
  switch (fileStatus(file)) {
    case 'deleted':
      if (file.deleteReason === 'deleted')
        throw new GoneError('FILE_DELETED', 'this file was deleted by its owner');
      throw new GoneError('FILE_EXPIRED', 'this link has expired');
    case 'expired':
      throw new GoneError('FILE_EXPIRED', 'this link has expired');
    case 'exhausted':
      throw limitReached();
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
  const file = await findFile(deps.store, c.req.param('id'));
  if (fileStatus(file) === 'exhausted') c.header('x-downloads-left', '0');
  assertDownloadable(file);

  const etag = `"${file.sha256}"`;
  const headers: Record<string, string> = {
    'content-type': file.contentType,
    'content-disposition': contentDisposition(
      file.contentType.startsWith('image/') ? 'inline' : 'attachment',
      file.name,
    ),
    etag,
    'accept-ranges': 'bytes',
    'cache-control': 'private, no-store',
    'x-content-type-options': 'nosniff',
  };
  const left = downloadsLeft(file);
  headers['x-downloads-left'] = left === null ? 'unlimited' : String(left);

  if (
    c.req
      .header('if-none-match')
      ?.split(',')
      .some((t) => t.trim() === etag)
  ) {
    return c.body(null, 304, headers);
  }
  // A 416 tells the client the size (RFC 9110 §15.5.17); the error handler keeps headers set here.
  c.header('content-range', `bytes */${file.size}`);
  const range = parseRange(c.req.header('range'), file.size);
  c.header('content-range', undefined);
  headers['content-length'] = String(range ? range.end - range.start + 1 : file.size);
  if (range) headers['content-range'] = contentRange(range, file.size);
  const statusCode = range ? 206 : 200;
  if (headOnly) return c.body(null, statusCode, headers);

  let grant: Grant | undefined;
  if (file.maxDownloads > 0) {
    grant = await deps.counter.take(file);
    if (!grant.granted) {
      c.header('x-downloads-left', '0');
      throw limitReached();
    }
    headers['x-downloads-left'] = String(grant.left);
  }

  const signal = disconnectSignal(c.env.outgoing);
  for (const node of await readOrder(deps, file.id)) {
    const served = await tryServe(deps, c, node, file.id, { range, statusCode, headers, signal });
    if (served) return RESPONSE_ALREADY_SENT;
    if (signal.aborted) break;
  }
  if (grant) await giveBack(deps, file);
  if (signal.aborted) return RESPONSE_ALREADY_SENT;
  throw new UnavailableError(
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

/** Nodes holding a healthy replica: online ones first, each group in placement order. */
async function readOrder(deps: DownloadDeps, id: string): Promise<NodeAddress[]> {
  const holders = new Set(
    (await deps.store.replicasOf(id))
      .filter((r) => r.key === id && r.state === 'ok')
      .map((r) => r.node),
  );
  const ranked = rankNodes(id, deps.nodes).filter((n) => holders.has(n.id));
  return [
    ...ranked.filter((n) => deps.registry.isOnline(n.id)),
    ...ranked.filter((n) => !deps.registry.isOnline(n.id)),
  ];
}

/** Streams the blob from `node`; false if the node failed before its first byte. */
async function tryServe(
  deps: DownloadDeps,
  c: Ctx,
  node: NodeAddress,
  key: string,
  o: {
    range?: ByteRange;
    statusCode: number;
    headers: Record<string, string>;
    signal: AbortSignal;
  },
): Promise<boolean> {
  let body;
  let first: Buffer | null;
  try {
    const res = await deps.client.getBlob(node, key, {
      range: o.range && `bytes=${o.range.start}-${o.range.end}`,
      signal: o.signal,
    });
    body = res.body;
    if (res.statusCode !== (o.range ? 206 : 200)) {
      await body.dump();
      if (res.statusCode === 404) {
        deps.log.warn({ key, node: node.id }, 'replica missing on node');
        await deps.store.setReplicaState(key, node.id, 'missing');
      }
      return false;
    }
    first = await firstChunk(body);
  } catch (err) {
    body?.destroy();
    if (isUnreachable(err)) deps.registry.reportFailure(node.id, err);
    if (!o.signal.aborted)
      deps.log.warn(
        { key, node: node.id, err: (err as Error).message },
        'replica read failed, trying the next',
      );
    return false;
  }
  deps.registry.reportSuccess(node.id);
  const out = c.env.outgoing;
  out.writeHead(o.statusCode, o.headers);
  if (first) out.write(first);
  pipeChain(body, out).catch((err: Error) => {
    // Headers are gone: a truncated body (short of Content-Length) is the only signal left.
    if (!o.signal.aborted)
      deps.log.warn({ key, node: node.id, err: err.message }, 'download broke mid-stream');
  });
  return true;
}

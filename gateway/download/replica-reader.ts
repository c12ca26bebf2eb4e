/**
 * Reading a blob from its replicas, for a download: which replicas, in what
 * order, and what happens when one fails. It knows nothing of HTTP: the
 * download handler asks for a stream of a blob's bytes (a range of them) and
 * gets one once a replica's first byte has arrived, or hears that no replica
 * served.
 *
 * Replicas are tried in read order (read-order.ts): online nodes with the
 * fewest reads in flight first, nodes with every read connection busy never
 * (the handler answers 503 NODES_BUSY at once when that is all of them). A
 * node that refuses, times out, or fails before its first byte (a small
 * corrupt blob fails its checksum before any byte) costs the client nothing:
 * the next replica serves. A node that fails after it is handed on to the
 * next replicas in read order, from the first byte not yet sent
 * (resumable-read.ts, the offsets and checksum of such a read). A node that
 * checks each byte before sending it says so (H.verified) and is not checked
 * again here; a whole-blob read from one that does not is checked against
 * the blob's sha256 before its last chunk goes out.
 * A replica found missing or corrupt is recorded and queued for repair; a
 * node found down is reported to the node registry.
 */
import type { Readable } from 'node:stream';
import type { JobPublisher } from '../../shared/amqp.js';
import type { NodeAddress } from '../../shared/config.js';
import type { LayoutView } from '../../shared/layout-watcher.js';
import { fileIdOf } from '../../shared/keys.js';
import type { Logger } from '../../shared/logger.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import {
  isUnreachable,
  NodeBusyError,
  NodeHttpError,
  type GatewayNodeClient,
} from '../../shared/node-client.js';
import { rankNodes } from '../../shared/placement.js';
import { contentRange, type ByteRange } from '../../shared/range.js';
import type { RepairQueue } from '../../shared/repair-queue.js';
import { firstChunk } from '../../shared/streams.js';
import type { NodeStates } from '../cluster/node-registry.js';
import { requestRepair } from '../cluster/repair-requests.js';
import type { ServedBlob } from '../files/variants.js';
import { readOrder, type ReadOrder, type ReplicaRow } from './read-order.js';
import { resumableRead, type Source } from './resumable-read.js';
import { H } from '../../shared/node-protocol.js';

/** What a replica read needs (a part of the download handler's deps). */
export interface ReplicaReaderDeps {
  store: MetadataStore;
  client: GatewayNodeClient;
  registry: NodeStates;
  amqp: JobPublisher;
  /** A replica found missing or corrupt is queued for repair here. */
  repairs: RepairQueue;
  /** The layout in force: its nodes, draining ones included, are where replicas are read. */
  layout: LayoutView;
  log: Logger;
}

/** The outcome of a read: a stream of the bytes asked for, or why no replica served. */
export type ReplicaReadResult =
  | { stream: Readable }
  /** `busy`: some replica's node had no read connection free (else none was reachable). */
  | { busy: boolean };

/** A read of one blob from its replicas; `blobRead` makes one. */
export interface BlobRead {
  /** The read order now: health from the registry, reads in flight from the node client. */
  order(): ReadOrder;
  /**
   * Bytes `range` of the blob (all of it without one), streamed from the
   * first replica, in the read order as it is now, that sends a first byte,
   * and failing over mid-stream; the stream fails rather than end short or
   * wrong. `signal` is the client leaving: no more replicas are tried.
   */
  open(o: { range?: ByteRange; signal: AbortSignal }): Promise<ReplicaReadResult>;
}

/** A read of `blob` (of file `fileId`) from the replicas the metadata records. */
export async function blobRead(
  deps: ReplicaReaderDeps,
  fileId: string,
  blob: ServedBlob,
): Promise<BlobRead> {
  const replicas = (await deps.store.replicasOf(fileId)).filter((r) => r.key === blob.key);
  return {
    order: () => orderOf(deps, blob.key, replicas),
    open: (o) => open(deps, blob, orderOf(deps, blob.key, replicas), o),
  };
}

function orderOf(deps: ReplicaReaderDeps, key: string, replicas: ReplicaRow[]): ReadOrder {
  return readOrder(rankNodes(key, deps.layout.nodes()), replicas, {
    isOnline: (id) => deps.registry.isOnline(id),
    readsInFlight: (node) => deps.client.readsInFlight(node),
    readsFull: (node) => deps.client.readsFull(node),
  });
}

async function open(
  deps: ReplicaReaderDeps,
  blob: ServedBlob,
  order: ReadOrder,
  o: { range?: ByteRange; signal: AbortSignal },
): Promise<ReplicaReadResult> {
  let busy = order.busy.length > 0;
  for (const [i, node] of order.nodes.entries()) {
    // Busy nodes last: by a failover mid-stream one of them may have a connection free.
    const rest = [...order.nodes.slice(i + 1), ...order.busy];
    const outcome = await tryRead(deps, node, blob, rest, o);
    if (typeof outcome !== 'string') return { stream: outcome };
    if (outcome === 'busy') busy = true;
    if (o.signal.aborted) break;
  }
  return { busy };
}

/**
 * Reads the blob from `node`, or from the nodes of `rest` (the rest of the
 * read order) if `node` fails mid-stream: see resumable-read.ts. The stream
 * once `node` sent its first byte; `busy` if `node` refused the read for want
 * of a free connection, `failed` if it failed otherwise before its first byte.
 */
async function tryRead(
  deps: ReplicaReaderDeps,
  node: NodeAddress,
  blob: ServedBlob,
  rest: NodeAddress[],
  o: { range?: ByteRange; signal: AbortSignal },
): Promise<Readable | 'busy' | 'failed'> {
  const key = blob.key;
  let first: Source | undefined;
  let head: Buffer | null;
  try {
    first = await openBlob(deps, node, key, {
      range: o.range && `bytes=${o.range.start}-${o.range.end}`,
      status: o.range ? 206 : 200,
      signal: o.signal,
    });
    if (!first) return 'failed';
    head = await firstChunk(first.body);
  } catch (err) {
    first?.body.destroy();
    return readFailed(deps, node, key, err, o.signal);
  }
  deps.registry.reportSuccess(node.id);

  const span = o.range ?? { start: 0, end: blob.size - 1 };
  // A node that checks each byte before sending it has verified them; else only a read
  // of the whole blob can be checked here, against its sha256.
  const whole = span.start === 0 && span.end === blob.size - 1;
  const hashHere = whole && !first.verifiedByNode;
  return resumableRead({
    range: span,
    sha256: hashHere ? blob.sha256 : undefined,
    first,
    head,
    next: (from, failed, err) =>
      resume(deps, blob, rest, {
        from,
        end: span.end,
        failed,
        err,
        hashHere,
        signal: o.signal,
      }),
  });
}

/**
 * A read from `node` failed before its first byte: `busy` when the node had
 * no read connection free (routine under load, so not a warning), else
 * `failed`, the registry told if the node is unreachable.
 */
function readFailed(
  deps: ReplicaReaderDeps,
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
 * GETs `key` from `node`: its body (and whether the node verified each byte
 * before sending it) if the node answered `status` (and `contentRange`,
 * when given), else undefined, marking a replica the node does not have as
 * missing. Throws what the request throws.
 */
async function openBlob(
  deps: ReplicaReaderDeps,
  node: NodeAddress,
  key: string,
  o: { range?: string; status: number; contentRange?: string; signal: AbortSignal },
): Promise<Source | undefined> {
  const res = await deps.client.getBlob(node, key, { range: o.range, signal: o.signal });
  // Whoever reads the body next also hears of its errors, though maybe a tick late: no crash meanwhile.
  res.body.on('error', () => undefined);
  if (
    res.statusCode === o.status &&
    (o.contentRange === undefined || res.headers['content-range'] === o.contentRange)
  )
    return { node, body: res.body, verifiedByNode: res.headers[H.verified] === 'before-send' };
  await res.body.dump();
  if (res.statusCode === 404) await replicaLost(deps, fileIdOf(key), key, node);
  return undefined;
}

/** A replica the metadata counts on is gone (missing, or quarantined as corrupt): record it and queue its repair. */
async function replicaLost(
  deps: ReplicaReaderDeps,
  fileId: string,
  key: string,
  node: NodeAddress,
) {
  deps.log.warn({ key, node: node.id }, 'replica missing on node; queueing its repair');
  await deps.store.setReplicaState(key, node.id, 'missing');
  void requestRepair(deps, fileId, key);
}

/**
 * `r.failed` broke off after the bytes before `r.from` reached the client: the
 * next node of `rest` that serves [from..end], or undefined to end the
 * download short.
 *
 * A node still up that cut its stream most likely failed its own checksum.
 * If it checked each byte before sending it, what it sent is good and the
 * read carries on. If not, the bytes it sent may be wrong: a whole-file read
 * hashed here carries on anyway (its sha256 is checked before the last
 * chunk goes out); anything else ends short, as the node meant it to. A read
 * not hashed here resumes only from nodes that check each byte before
 * sending it, so no unchecked byte joins it.
 */
async function resume(
  deps: ReplicaReaderDeps,
  blob: ServedBlob,
  rest: NodeAddress[],
  r: {
    from: number;
    end: number;
    failed: Source;
    err: Error;
    /** The gateway hashes this read (a whole blob from a node that does not check each byte). */
    hashHere: boolean;
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
  if (!r.hashHere && nodeUp && !r.failed.verifiedByNode) {
    deps.log.warn(
      { key, node: r.failed.node.id },
      'node is up but cut its stream (failed checksum?): not resuming a read that cannot be verified',
    );
    return undefined;
  }
  const wanted = { start: r.from, end: r.end };
  while (rest.length > 0 && !r.signal.aborted) {
    const node = rest.shift()!;
    try {
      const next = await openBlob(deps, node, key, {
        range: `bytes=${wanted.start}-${wanted.end}`,
        status: 206,
        contentRange: contentRange(wanted, blob.size),
        signal: r.signal,
      });
      if (!next) continue;
      if (!r.hashHere && !next.verifiedByNode) {
        next.body.destroy();
        deps.log.warn(
          { key, node: node.id },
          'replica does not check each byte before sending it: not resuming from it',
        );
        continue;
      }
      deps.registry.reportSuccess(node.id);
      deps.log.info({ key, node: node.id, from: r.from }, 'download resumed');
      return next;
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
async function isDown(deps: ReplicaReaderDeps, node: NodeAddress, err: Error): Promise<boolean> {
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

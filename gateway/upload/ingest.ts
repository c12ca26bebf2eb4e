/**
 * One file's way in: client bytes → size limit → type sniffing → sha256 →
 * the object's chain of storage nodes, with a `pending` metadata row from
 * before the first byte leaves until the caller commits or discards it.
 *
 * The source stream is piped, never handed to pipeline(): on failure it is
 * only unpiped, so the HTTP request stays intact and can still be answered.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { GatewayConfig, NodeAddress } from '../../shared/config.js';
import type { Logger } from '../../shared/logger.js';
import { ClientGoneError, PayloadTooLargeError, UnavailableError } from '../../shared/errors.js';
import { blobKey, newFileId } from '../../shared/keys.js';
import type { MetadataStore, ReplicaState } from '../../shared/metadata-store.js';
import type { ReplicaOutcome } from '../../shared/node-protocol.js';
import { ByteLimit, HashCounter, pipeChain } from '../../shared/streams.js';
import { PassThrough } from 'node:stream';
import { UploadSpool } from './upload-spool.js';
import type { MemoryBudget } from '../../shared/memory-budget.js';
import { TypeSniffer } from './content-type.js';
import { ChainHeadFailedError, type Replication } from '../cluster/replicator.js';

export interface IngestDeps {
  store: MetadataStore;
  replicator: Replication;
  log: Logger;
  /** GATEWAY_ID: the owner of the pending rows. */
  server: GatewayConfig['server'];
  /** This gateway's spool directory (see upload-spool.ts). */
  spoolDir: string;
  /** The spool's bytes kept in memory, across every upload of this gateway. */
  spoolMemory: MemoryBudget;
  /** MAX_UPLOAD_BYTES and ALLOWED_TYPES. */
  uploads: GatewayConfig['uploads'];
  /** WRITE_QUORUM. */
  replication: GatewayConfig['replication'];
  /** Counts the bytes read (GET /metrics). */
  metrics?: { uploadRead(bytes: number): void };
}

/** A file whose bytes are durable on a quorum of nodes, its row still `pending`. */
export interface IngestedFile {
  id: string;
  name: string;
  size: number;
  contentType: string;
  sha256: string;
  deleteToken: string;
  createdAt: number;
  replicas: { node: string; state: ReplicaState }[];
}

export interface IngestRequest {
  source: Readable;
  name: string;
  /** Content-Length of a raw upload, when the client sent one. */
  declaredLength?: number;
  /** Provisional; the commit writes the final options. */
  maxDownloads: number;
  expiresAt: number;
  signal: AbortSignal;
  /** The id of the signed upload link it comes through, recorded on the file. */
  uploadLink?: string;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export async function ingestFile(deps: IngestDeps, req: IngestRequest): Promise<IngestedFile> {
  const { maxUploadBytes, allowedTypes } = deps.uploads;
  if (req.declaredLength !== undefined && req.declaredLength > maxUploadBytes) {
    throw PayloadTooLargeError.forBytes(maxUploadBytes);
  }
  const id = newFileId();
  let chain = deps.replicator.chainFor(id);
  const limit = new ByteLimit(maxUploadBytes);
  const sniffer = new TypeSniffer(allowedTypes, req.name);
  const hasher = new HashCounter();
  const spool = new UploadSpool(deps.spoolDir, id, deps.spoolMemory);
  let streamError: Error | undefined;
  // A stage that fails (413, a body refused mid-stream) ends the nodes' write at once: a node
  // waiting for bytes that will never come would otherwise hold it until its body timeout.
  const failed = new AbortController();
  for (const stage of [limit, sniffer, hasher, spool])
    stage.once('error', (err) => {
      streamError ??= err;
      failed.abort(err);
    });
  // Settles once every byte is spooled, or a stage failed (recorded above, synchronously).
  const streamed = pipeChain(limit, sniffer, hasher, spool).catch(() => {});
  // Added once the stage is piped, so this listener does not start the flow early.
  const metrics = deps.metrics;
  if (metrics) limit.on('data', (chunk: Buffer) => metrics.uploadRead(chunk.length));
  const unpipe = () => req.source.unpipe(limit);
  req.source.once('error', (err) => limit.destroy(err));
  req.source.pipe(limit);
  // The request is over (client gone, or another file of it failed): stop this file too, for the same reason.
  const stop = () =>
    limit.destroy(req.signal.reason instanceof Error ? req.signal.reason : new ClientGoneError());
  req.signal.addEventListener('abort', stop, { once: true });

  let contentType: string;
  try {
    contentType = await sniffer.type;
  } catch (err) {
    unpipe();
    await spool.discard();
    throw streamError ?? err;
  }

  const deleteToken = randomBytes(24).toString('base64url');
  const createdAt = Date.now();
  try {
    await deps.store.beginUpload({
      id,
      name: req.name,
      contentType,
      maxDownloads: req.maxDownloads,
      createdAt,
      expiresAt: req.expiresAt,
      deleteTokenHash: hashToken(deleteToken),
      owner: deps.server.gatewayId,
      uploadLink: req.uploadLink,
    });
  } catch (err) {
    // No row, so no sweep would ever find this upload: its spool must go now.
    unpipe();
    await spool.discard();
    throw err;
  }

  let outcomes: ReplicaOutcome[];
  const tried = new Set(chain);
  try {
    try {
      // The replicator may destroy what it is given; the spool must outlive a failed head.
      const forward = new PassThrough();
      // Its failures reach the write through the body a node reads; while no node reads it
      // (connecting; every one refused) an unheard 'error' would crash the gateway.
      forward.on('error', () => {});
      spool.pipe(forward);
      // pipe() does not pass failures on: a stage that fails (413, a client gone) must end the write.
      spool.once('error', (err) => forward.destroy(err));
      spool.once('close', () => {
        if (!spool.readableEnded) forward.destroy(streamError ?? new ClientGoneError());
      });
      outcomes = await deps.replicator.write(blobKey(id), chain, forward, {
        contentLength: req.declaredLength,
        signal: AbortSignal.any([req.signal, failed.signal]),
      });
    } catch (err) {
      if (!(err instanceof ChainHeadFailedError) || streamError || req.signal.aborted) throw err;
      deps.log.warn(
        { id, node: err.node, err: (err.cause as Error).message },
        'chain head failed mid-upload; replaying from the spool to the nodes still up',
      );
      spool.unpipe();
      spool.resume(); // keep taking the client's bytes, into the spool only
      await streamed;
      if (streamError) throw streamError;
      ({ chain, outcomes } = await deps.replicator.rewrite(
        id,
        blobKey(id),
        () => spool.replay(),
        new Set([err.node]),
        tried,
        { contentLength: hasher.bytes, expectedSha256: hasher.digest(), signal: req.signal },
      ));
    }
    await streamed;
    if (streamError) throw streamError;
  } catch (err) {
    // Taken first: stopping the stages below fails them too (a premature close, a bodyless 499).
    const failure = streamError ?? err;
    unpipe();
    hasher.destroy();
    await spool.discard();
    await discardUpload(deps, id, [...tried]);
    throw failure;
  }
  await spool.discard();

  const sha256 = hasher.digest();
  const size = hasher.bytes;
  const good = outcomes.filter((o) => o.ok && o.sha256 === sha256 && o.size === size);
  const garbled = outcomes.filter((o) => o.ok && !good.includes(o)).map((o) => o.node);
  if (garbled.length > 0) {
    // Bytes changed between us and that node: its copy must not stay under this key.
    deps.log.error({ id, garbled }, 'replica stored with a different sha256; removing it');
    await deps.replicator.deleteFrom(
      blobKey(id),
      chain.filter((n) => garbled.includes(n.id)),
    );
  }
  const quorum = deps.replication.writeQuorum;
  if (good.length < quorum) {
    deps.log.warn({ id, outcomes }, 'upload below write quorum');
    await discardUpload(deps, id, [...tried]);
    throw new UnavailableError(
      `only ${good.length} of ${chain.length} storage nodes stored the file; ${quorum} are needed`,
      'WRITE_QUORUM_FAILED',
    );
  }
  return {
    id,
    name: req.name,
    size,
    contentType,
    sha256,
    deleteToken,
    createdAt,
    replicas: deps.replicator.placementOutcome(id, chain, new Set(good.map((o) => o.node))),
  };
}

/**
 * Removes whatever an upload that will not commit left on the nodes (its
 * chain when known, else all), then its row. If a node cannot be reached the
 * row stays `aborted` and the cleanup sweep retries on every node later: a
 * failed upload never leaves a blob behind for good.
 *
 * Only an abort that took the row is followed by deletes: an upload that
 * committed meanwhile (a cleanup racing a slow client, or another process
 * with the same GATEWAY_ID) keeps its blobs. Resolves false in that case.
 */
export async function discardUpload(
  deps: Pick<IngestDeps, 'store' | 'replicator' | 'log'>,
  id: string,
  chain?: NodeAddress[],
): Promise<boolean> {
  if (!(await deps.store.abortUpload(id))) return false;
  const unreachable = await deps.replicator.deleteFrom(blobKey(id), chain);
  if (unreachable.length === 0) await deps.store.forgetUpload(id);
  else deps.log.warn({ id, unreachable }, 'aborted upload kept for cleanup');
  return true;
}

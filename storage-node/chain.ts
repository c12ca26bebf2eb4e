/**
 * Chain replication of a write.
 *
 * The node stores the incoming stream and, at the same time, forwards the same
 * bytes to the next node of the chain, which does likewise. It answers after
 * its own commit and the chain's answer, with one outcome per node.
 *
 * A successor that cannot be reached, or dies mid-stream, is not fatal: once
 * our own copy is committed we replay it from disk to the rest of the chain,
 * skipping the failed node. Our disk is the replay buffer, so no bytes are
 * held in memory for it.
 */
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import type { NodeAddress } from '../shared/config.js';
import { BlobNotStoredError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { NodeClient } from '../shared/node-client.js';
import type { PutReport, ReplicaOutcome } from '../shared/node-protocol.js';
import { pipeChain } from '../shared/streams.js';
import type { BlobStore } from './blob-store.js';
import { StagingGapError, type StagingStore } from './staging-store.js';

export interface ChainDeps {
  selfId: string;
  store: BlobStore;
  /** Where a staged write (ChainWrite.offset) goes. */
  staging?: StagingStore;
  client: NodeClient;
  log: Logger;
}

export interface ChainWrite {
  key: string;
  /** The bytes as they arrive, or a small blob (at most SMALL_BLOB bytes) already whole. */
  body: Readable | Buffer;
  /** Nodes after this one. */
  chain: NodeAddress[];
  expectedSha256: string | undefined;
  contentLength: number | undefined;
  hop: number;
  /** A part of a staged upload (storage-node/staging-store.ts) at this offset, not a blob. */
  offset?: number;
}

/**
 * Stores `w.body` here and on every node of `w.chain`, and answers one outcome
 * per node. Throws BlobNotStoredError, carrying that same report, when this
 * node's own write failed; never throws for a successor's failure.
 */
export async function replicateWrite(deps: ChainDeps, w: ChainWrite): Promise<PutReport> {
  const [next, ...rest] = w.chain;
  if (!next) return reportOf(w.key, await storeLocally(deps, w, w.body), []);
  if (Buffer.isBuffer(w.body)) return replicateSmall(deps, w, w.body, next, rest);

  const forwardBody = new PassThrough({ highWaterMark: 256 * 1024 });
  const forwarded = forward(deps, w, forwardBody, next, rest);

  const tap = new ForwardTap(forwardBody);
  // A successor that answers before reading everything (an error) must not stall the local write.
  void forwarded.then(() => forwardBody.destroy());
  pipeChain(w.body, tap).catch(() => {}); // a failure surfaces through the local write below
  const [local, successor] = await Promise.all([storeLocally(deps, w, tap), forwarded]);

  return chainReport(deps, w, local, successor, next, rest);
}

/**
 * A small blob, whole in memory: our write and the successor's request go
 * at once, the successor getting the bytes in one write, with no stream
 * stage between (at 64 KiB those stages cost more than the disk).
 */
async function replicateSmall(
  deps: ChainDeps,
  w: ChainWrite,
  data: Buffer,
  next: NodeAddress,
  rest: NodeAddress[],
): Promise<PutReport> {
  const [local, successor] = await Promise.all([
    storeLocally(deps, w, data),
    forward(deps, w, data, next, rest),
  ]);
  return chainReport(deps, w, local, successor, next, rest);
}

/** What the successor answered: the rest of the chain's report, or why it failed. */
type Forwarded = { report: PutReport; error: undefined } | { report: undefined; error: Error };

/** Sends `body` to `next` with the rest of the chain; never throws. */
function forward(
  deps: ChainDeps,
  w: ChainWrite,
  body: Readable | Buffer,
  next: NodeAddress,
  rest: NodeAddress[],
): Promise<Forwarded> {
  return deps.client
    .putBlob(next, w.key, body, {
      chain: rest,
      expectedSha256: w.expectedSha256,
      contentLength: Buffer.isBuffer(body) ? body.length : w.contentLength,
      hop: w.hop + 1,
      offset: w.offset,
    })
    .then(
      (report) => ({ report, error: undefined }),
      (error: Error) => ({ report: undefined, error }),
    );
}

/** Our outcome and the chain's; when the successor failed, our copy replayed to the rest. */
async function chainReport(
  deps: ChainDeps,
  w: ChainWrite,
  local: LocalWrite,
  successor: Forwarded,
  next: NodeAddress,
  rest: NodeAddress[],
): Promise<PutReport> {
  if (successor.report) return reportOf(w.key, local, successor.report.replicas);

  deps.log.warn(
    { key: w.key, node: next.id, err: successor.error?.message },
    'chain successor failed',
  );
  const successors: ReplicaOutcome[] = [
    { node: next.id, ok: false, error: describe(successor.error) },
  ];
  const self = local.outcome;
  if (self.ok && rest.length > 0) successors.push(...(await replayFromDisk(deps, w, self, rest)));
  else
    successors.push(...rest.map((n) => ({ node: n.id, ok: false as const, error: 'not reached' })));
  return reportOf(w.key, local, successors);
}

/** This node's own write: its outcome in the report and, when it failed, the error. */
interface LocalWrite {
  outcome: ReplicaOutcome;
  failure?: unknown;
}

/** The chain's report, thrown (BlobNotStoredError) when this node's own write failed. */
function reportOf(key: string, local: LocalWrite, successors: ReplicaOutcome[]): PutReport {
  const report = { key, replicas: [local.outcome, ...successors] };
  if (!local.outcome.ok) throw new BlobNotStoredError(report, local.failure);
  return report;
}

async function storeLocally(
  deps: ChainDeps,
  w: ChainWrite,
  body: Readable | Buffer,
): Promise<LocalWrite> {
  const { key } = w;
  try {
    const info = await storeBody(deps, w, body);
    return { outcome: { node: deps.selfId, ok: true, sha256: info.sha256, size: info.size } };
  } catch (err) {
    const error = describe(err);
    deps.log.warn({ key, error }, 'blob not stored');
    const code = (err as { code?: string }).code;
    return { outcome: { node: deps.selfId, ok: false, code, error }, failure: err };
  }
}

/** A blob, or a staged part, as this node stores it. */
function storeBody(
  deps: ChainDeps,
  w: ChainWrite,
  body: Readable | Buffer,
): Promise<{ sha256: string; size: number }> {
  const { key, expectedSha256 } = w;
  if (w.offset !== undefined) {
    const part = Buffer.isBuffer(body) ? Readable.from([body]) : body;
    return deps.staging!.write(key, w.offset, part).catch((err: unknown) => {
      // This node lacks earlier parts (it was away): the rest of the chain still gets this one.
      if (err instanceof StagingGapError) part.resume();
      throw err;
    });
  }
  return Buffer.isBuffer(body)
    ? deps.store.putSmall(key, body, { expectedSha256 })
    : deps.store.put(key, body, { expectedSha256 });
}

/** Our copy of what was just written, read back from disk; undefined when it is gone. */
async function readBack(
  deps: ChainDeps,
  w: ChainWrite,
  self: { size: number },
): Promise<Readable | undefined> {
  if (w.offset !== undefined) return deps.staging!.read(w.key, w.offset, self.size);
  return (await deps.store.get(w.key))?.stream;
}

/** Sends our committed copy to the first reachable node of `chain`, which forwards it on. */
async function replayFromDisk(
  deps: ChainDeps,
  w: ChainWrite,
  self: { sha256: string; size: number },
  chain: NodeAddress[],
): Promise<ReplicaOutcome[]> {
  const { key, hop } = w;
  const failed: ReplicaOutcome[] = [];
  for (let i = 0; i < chain.length; i++) {
    const target = chain[i]!;
    const stream = await readBack(deps, w, self);
    if (!stream) break;
    try {
      const report = await deps.client.putBlob(target, key, stream, {
        chain: chain.slice(i + 1),
        expectedSha256: w.offset === undefined ? self.sha256 : undefined,
        contentLength: self.size,
        hop: hop + 1,
        offset: w.offset,
      });
      return [...failed, ...report.replicas];
    } catch (err) {
      stream.destroy();
      deps.log.warn({ key, node: target.id, err: describe(err) }, 'chain replay failed');
      failed.push({ node: target.id, ok: false, error: describe(err) });
    }
  }
  const reached = new Set(failed.map((f) => f.node));
  return [
    ...failed,
    ...chain
      .filter((n) => !reached.has(n.id))
      .map((n) => ({ node: n.id, ok: false as const, error: 'not reached' })),
  ];
}

/**
 * Passes every chunk on unchanged and copies it into `forward`, waiting for
 * the forward stream's drain so the slower side sets the pace. If the forward
 * stream fails, it is dropped and the local write goes on.
 */
class ForwardTap extends Transform {
  private forwardAlive = true;

  constructor(private readonly forward: PassThrough) {
    super({ highWaterMark: 256 * 1024 });
    forward.once('close', () => (this.forwardAlive = false));
    forward.on('error', () => (this.forwardAlive = false));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (!this.forwardAlive || this.forward.write(chunk)) return done(null, chunk);
    const resume = () => {
      this.forward.off('drain', resume);
      this.forward.off('close', resume);
      done(null, chunk);
    };
    this.forward.on('drain', resume);
    this.forward.on('close', resume);
  }

  override _flush(done: TransformCallback): void {
    if (this.forwardAlive) this.forward.end();
    done();
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    // The write failed on our side or our sender's: abort the forward too, so successors discard their temp files.
    if (err) this.forward.destroy(err);
    done(err);
  }
}

function describe(err: unknown): string {
  if (!err) return 'unknown error';
  const e = err as { code?: string; message?: string };
  return e.code && e.message ? `${e.code}: ${e.message}` : (e.message ?? String(err));
}

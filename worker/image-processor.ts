/**
 * The `images.process` job: a thumbnail and a compressed copy of an uploaded
 * image, stored through chain replication and recorded as its variants.
 *
 * 1. A file that is gone (unknown, deleted, expired) drops the job; one
 *    already processed (or failed, or skipped) makes it a no-op.
 * 2. The attempt is counted in the metadata before anything is decoded and
 *    uncounted when it ends, so only attempts the worker died in stay
 *    counted. Past MAX_INTERRUPTIONS of them the image is failed without
 *    being opened again: an image that crashes the worker cannot crash-loop
 *    every worker in turn.
 * 3. The original streams from a healthy replica into a temp file (sha256
 *    checked on the way), sharp makes the variants from that file, and each
 *    goes down its chain (variant-writer.ts). Variants, their replica rows
 *    and `done` are recorded in one transaction.
 *
 * An image sharp refuses, or a job past its time limit, ends `failed` with a
 * reason and is acknowledged. Anything else (no node reachable, below write
 * quorum) throws: the consumer retries, then dead-letters, and the sweep
 * queues the still-pending file again. Re-running is harmless: sharp's output
 * is deterministic, so a retry rewrites the same bytes under the same keys,
 * and the records are upserts.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { rankNodes } from '../shared/placement.js';
import type { NodeAddress } from '../shared/config.js';
import type { ImageProcessJob } from '../shared/jobs.js';
import { blobKey } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import type { FileRecord, MetadataStore, ReplicaState } from '../shared/metadata-store.js';
import { isTransportFailure, type NodeClient } from '../shared/node-client.js';
import { HashCounter } from '../shared/streams.js';
import {
  readHeader,
  renderVariant,
  UnprocessableImageError,
  VARIANT_SPECS,
  type RenderedVariant,
} from './image-variants.js';
import type { Slots } from './slots.js';
import type { StoredBlob, VariantWriter } from './variant-writer.js';

/** Attempts the worker may die in before the image is given up. */
export const MAX_INTERRUPTIONS = 3;

export interface ImageProcessorDeps {
  store: MetadataStore;
  client: NodeClient;
  nodes: NodeAddress[];
  writer: VariantWriter;
  /** Bounds the images processed at once (IMAGE_CONCURRENCY). */
  slots: Slots;
  log: Logger;
  maxInputPixels: number;
  /** Time limit of one job, from when it gets a slot. */
  timeoutMs: number;
  /** Where originals are spooled while they are processed. */
  tmpDir: string;
  /** Queues a repair of blob `key` of file `fileId`. */
  repair(fileId: string, key: string): Promise<void>;
}

export class ImageProcessor {
  constructor(private readonly deps: ImageProcessorDeps) {}

  /** Creates the temp directory and removes what jobs of dead workers left there. */
  static async prepare(tmpDir: string, olderThanMs: number): Promise<void> {
    await mkdir(tmpDir, { recursive: true });
    const now = Date.now();
    for (const entry of await readdir(tmpDir)) {
      const path = join(tmpDir, entry);
      // Younger entries may belong to a job of another worker on this host.
      const info = await stat(path).catch(() => undefined);
      if (info && now - info.mtimeMs > olderThanMs)
        await rm(path, { recursive: true, force: true });
    }
  }

  /** The `images.process` job handler. */
  async handle(job: ImageProcessJob): Promise<void> {
    const file = await this.deps.store.getFile(job.fileId);
    if (!file || !isLive(file)) {
      this.deps.log.info({ id: job.fileId }, 'image job for a file that is gone, dropped');
      return;
    }
    if (file.processing !== 'pending') return; // done, failed or skipped: nothing left to do
    await this.deps.slots.run(() => this.attempt(file));
  }

  private async attempt(file: FileRecord): Promise<void> {
    const { store, log } = this.deps;
    const attempts = await store.beginProcessing(file.id);
    if (attempts === null) return; // another job finished it meanwhile
    if (attempts > MAX_INTERRUPTIONS) {
      return this.fail(file, `given up: processing was interrupted ${attempts - 1} times`);
    }
    log.info({ id: file.id, attempt: attempts }, 'processing image');
    const deadline = AbortSignal.timeout(this.deps.timeoutMs);
    try {
      await this.process(file, deadline);
    } catch (err) {
      if (err instanceof UnprocessableImageError) return this.fail(file, err.reason);
      if (deadline.aborted)
        return this.fail(file, 'processing took longer than IMAGE_JOB_TIMEOUT_SECONDS');
      await store.abandonProcessing(file.id);
      throw err;
    }
  }

  private async process(file: FileRecord, deadline: AbortSignal): Promise<void> {
    const started = Date.now();
    const dir = await mkdtemp(join(this.deps.tmpDir, `${file.id}-`));
    try {
      const original = join(dir, 'original');
      await this.fetchOriginal(file, original, deadline);
      const header = await readHeader(original, this.deps.maxInputPixels);
      const rendered: RenderedVariant[] = [];
      // One after the other: a job holds at most one decoded image.
      for (const spec of VARIANT_SPECS) {
        const timeLeftMs = this.deps.timeoutMs - (Date.now() - started);
        rendered.push(
          await renderVariant(original, spec, header, {
            maxInputPixels: this.deps.maxInputPixels,
            timeLeftMs,
          }),
        );
        deadline.throwIfAborted();
      }
      const stored = await Promise.all(
        rendered.map((v) => this.deps.writer.write(blobKey(file.id, v.name), v.data, deadline)),
      );
      await this.record(file, rendered, stored);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async record(file: FileRecord, rendered: RenderedVariant[], stored: StoredBlob[]) {
    const now = Date.now();
    const variants = rendered.map((v, i) => ({
      variant: v.name,
      size: stored[i]!.size,
      width: v.width,
      height: v.height,
      contentType: v.contentType,
      sha256: stored[i]!.sha256,
      createdAt: now,
    }));
    const replicas: { key: string; node: string; state: ReplicaState }[] = rendered.flatMap(
      (v, i) => stored[i]!.replicas.map((r) => ({ key: blobKey(file.id, v.name), ...r })),
    );
    if (!(await this.deps.store.completeProcessing(file.id, variants, replicas))) {
      // The row was purged while we worked: nothing will delete these blobs but us.
      await Promise.all(rendered.map((v) => this.removeEverywhere(blobKey(file.id, v.name))));
      return;
    }
    this.deps.log.info(
      { id: file.id, variants: variants.map((v) => `${v.variant} ${v.width}×${v.height}`) },
      'image processed',
    );
    for (const r of replicas)
      if (r.state !== 'ok') await this.deps.repair(file.id, r.key).catch(() => undefined);
  }

  /**
   * Streams the original from the first healthy replica that serves it whole
   * and right into `path`; throws when none could (a transient failure).
   */
  private async fetchOriginal(file: FileRecord, path: string, signal: AbortSignal) {
    const holders = new Set(
      (await this.deps.store.replicasOf(file.id))
        .filter((r) => r.key === file.id && r.state === 'ok')
        .map((r) => r.node),
    );
    if (holders.size === 0) throw new UnprocessableImageError('the original has no healthy copy');
    for (const node of rankNodes(file.id, this.deps.nodes).filter((n) => holders.has(n.id))) {
      if (await this.download(file, node, path, signal)) return;
    }
    throw new Error(`no storage node could serve the original of ${file.id}`);
  }

  private async download(
    file: FileRecord,
    node: NodeAddress,
    path: string,
    signal: AbortSignal,
  ): Promise<boolean> {
    const { client, log, store } = this.deps;
    try {
      const res = await client.getBlob(node, file.id, { signal });
      if (res.statusCode !== 200) {
        await res.body.dump();
        if (res.statusCode === 404) {
          await store.setReplicaState(file.id, node.id, 'missing');
          await this.deps.repair(file.id, file.id).catch(() => undefined);
        }
        return false;
      }
      const hasher = new HashCounter();
      await pipeline(res.body, hasher, createWriteStream(path), { signal });
      if (hasher.digest() === file.sha256) return true;
      log.warn({ id: file.id, node: node.id }, 'original read with a wrong sha256');
    } catch (err) {
      if (signal.aborted || !isTransportFailure(err)) throw err;
      log.warn(
        { id: file.id, node: node.id, err: (err as Error).message },
        'could not read the original, trying the next replica',
      );
    }
    return false;
  }

  private async fail(file: FileRecord, reason: string): Promise<void> {
    await this.deps.store.failProcessing(file.id, reason);
    // Not an error of ours: the upload was accepted as an image and is still downloadable.
    this.deps.log.warn({ id: file.id, reason }, 'image processing failed');
  }

  private async removeEverywhere(key: string): Promise<void> {
    await Promise.all(
      this.deps.nodes.map((n) => this.deps.client.deleteBlob(n, key).catch(() => undefined)),
    );
  }
}

function isLive(file: FileRecord, now = Date.now()): boolean {
  return file.state === 'committed' && file.deletedAt === null && now < file.expiresAt;
}

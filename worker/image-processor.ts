/**
 * The image jobs: a thumbnail and a compressed copy of an uploaded image,
 * stored through chain replication and recorded as its variants. Two stages,
 * two queues, so a thumbnail never waits behind other images' copies (the
 * copy costs some 15 times the thumbnail's CPU):
 *
 * - `images.process` makes the thumbnail, records it (the file stays
 *   `pending`, and GET /files/:id/thumbnail serves it), then publishes
 *   `images.compress`;
 * - `images.compress` makes the compressed copy once no thumbnail is being
 *   made on this worker (or it has waited COPY_YIELD_MS), records it and marks
 *   the file `done`.
 *
 * Each stage:
 * 1. A file that is gone (unknown, deleted, expired) drops the job; one no
 *    longer pending (done, failed, skipped) makes it a no-op, and so does a
 *    variant already recorded (the thumbnail stage then only passes on).
 * 2. The attempt is counted in the metadata before anything is decoded and
 *    uncounted when it ends, so only attempts the worker died in stay
 *    counted. Past MAX_INTERRUPTIONS of them the image is failed without
 *    being opened again: an image that crashes the worker cannot crash-loop
 *    every worker in turn.
 * 3. The original streams from a healthy replica into a temp file (sha256
 *    checked on the way), sharp makes the variant from that file within one
 *    of IMAGE_CONCURRENCY slots (the decode is what costs memory and CPU; the
 *    transfers around it are not held to the slots), and it goes down its
 *    chain (variant-writer.ts). The variant and its replica rows are recorded
 *    in one transaction, with `done` for the copy.
 *
 * An image sharp refuses, or a job past its time limit, ends `failed` with a
 * reason and is acknowledged. Anything else (no node reachable, below write
 * quorum) throws: the consumer retries, then dead-letters, and the sweep
 * queues the still-pending file again. Re-running is harmless: sharp's output
 * is deterministic, so a retry rewrites the same bytes under the same keys,
 * and the records are upserts.
 */
import type { LayoutView } from '../shared/layout-watcher.js';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { rankNodes } from '../shared/placement.js';
import type { NodeAddress } from '../shared/config.js';
import type { ImageProcessJob } from '../shared/jobs.js';
import { blobKey } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import type { FileRecord, MetadataStore, VariantName } from '../shared/metadata-store.js';
import { isTransportFailure, type NodeClient } from '../shared/node-client.js';
import { writeHashedFile } from '../shared/streams.js';
import {
  readHeader,
  renderVariant,
  UnprocessableImageError,
  VARIANT_SPECS,
  type RenderedVariant,
  type VariantSpec,
} from './image-variants.js';
import type { Slots } from './slots.js';
import type { StoredBlob, VariantWriter } from './variant-writer.js';

const THUMB = VARIANT_SPECS.find((s) => s.name === 'thumb')!;
const COPY = VARIANT_SPECS.find((s) => s.name === 'compressed')!;

/** Attempts the worker may die in before the image is given up. */
export const MAX_INTERRUPTIONS = 3;

export interface ImageProcessorDeps {
  store: MetadataStore;
  client: NodeClient;
  /** The layout in force: every node, draining ones included. */
  layout: LayoutView;
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
  /** Publishes the `images.compress` job of file `fileId`. */
  queueCompressed(fileId: string): Promise<void>;
}

/** Longest a copy waits for this worker's thumbnails in progress before it takes a slot anyway. */
export const COPY_YIELD_MS = 2000;

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

  /** The `images.process` job: the thumbnail, then the copy's job. */
  async handle(job: ImageProcessJob): Promise<void> {
    const file = await this.pendingFile(job.fileId);
    if (!file) return;
    if (!(await this.has(file, 'thumb'))) {
      this.thumbnailsInProgress++;
      try {
        if (!(await this.attempt(file, THUMB, false))) return;
      } finally {
        if (--this.thumbnailsInProgress === 0) this.wakeCopies();
      }
    }
    await this.deps.queueCompressed(file.id);
  }

  /** The `images.compress` job: the compressed copy, and `done`. */
  async handleCompressed(job: ImageProcessJob): Promise<void> {
    await this.thumbnailsDone(COPY_YIELD_MS);
    const file = await this.pendingFile(job.fileId);
    if (!file) return;
    await this.attempt(file, COPY, true);
  }

  private thumbnailsInProgress = 0;
  private copiesWaiting: (() => void)[] = [];

  /** Resolves once no thumbnail is in progress on this worker, or after `maxWaitMs`. */
  private async thumbnailsDone(maxWaitMs: number): Promise<void> {
    if (this.thumbnailsInProgress === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, maxWaitMs);
      this.copiesWaiting.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wakeCopies(): void {
    for (const wake of this.copiesWaiting.splice(0)) wake();
  }

  /** The file if it is live and still pending processing; logs and drops anything else. */
  private async pendingFile(id: string): Promise<FileRecord | undefined> {
    const file = await this.deps.store.getFile(id);
    if (!file || !isLive(file)) {
      this.deps.log.info({ id }, 'image job for a file that is gone, dropped');
      return undefined;
    }
    // done, failed or skipped: nothing left to do
    return file.processing === 'pending' ? file : undefined;
  }

  private async has(file: FileRecord, variant: VariantName): Promise<boolean> {
    return (await this.deps.store.variantsOf(file.id)).some((v) => v.variant === variant);
  }

  /** One counted attempt at one variant; false when the image ended `failed` (or someone else finished it). */
  private async attempt(file: FileRecord, spec: VariantSpec, last: boolean): Promise<boolean> {
    const { store, log } = this.deps;
    const attempts = await store.beginProcessing(file.id);
    if (attempts === null) return false; // another job finished it meanwhile
    if (attempts > MAX_INTERRUPTIONS) {
      await this.fail(file, `given up: processing was interrupted ${attempts - 1} times`);
      return false;
    }
    log.info({ id: file.id, attempt: attempts, variant: spec.name }, 'processing image');
    const deadline = AbortSignal.timeout(this.deps.timeoutMs);
    try {
      await this.process(file, spec, last, deadline);
      return true;
    } catch (err) {
      if (err instanceof UnprocessableImageError) return this.fail(file, err.reason);
      if (deadline.aborted)
        return this.fail(file, 'processing took longer than IMAGE_JOB_TIMEOUT_SECONDS');
      await store.abandonProcessing(file.id);
      throw err;
    }
  }

  private async process(
    file: FileRecord,
    spec: VariantSpec,
    last: boolean,
    deadline: AbortSignal,
  ): Promise<void> {
    const started = Date.now();
    // A file of its own per attempt (a retry may overlap a stalled one); `prepare` removes those of dead workers.
    const original = join(this.deps.tmpDir, `${file.id}-${randomBytes(4).toString('hex')}`);
    try {
      await this.fetchOriginal(file, original, deadline);
      const header = await readHeader(original, this.deps.maxInputPixels);
      // The slot bounds the decoded images in memory at once, and the CPU.
      const rendered = await this.deps.slots.run(() =>
        renderVariant(original, spec, header, {
          maxInputPixels: this.deps.maxInputPixels,
          timeLeftMs: this.deps.timeoutMs - (Date.now() - started),
        }),
      );
      deadline.throwIfAborted();
      const stored = await this.deps.writer.write(
        blobKey(file.id, rendered.name),
        rendered.data,
        deadline,
      );
      await this.record(file, rendered, stored, last);
    } finally {
      await rm(original, { force: true });
    }
  }

  private async record(
    file: FileRecord,
    v: RenderedVariant,
    stored: StoredBlob,
    last: boolean,
  ): Promise<void> {
    const key = blobKey(file.id, v.name);
    const variant = {
      variant: v.name,
      size: stored.size,
      width: v.width,
      height: v.height,
      contentType: v.contentType,
      sha256: stored.sha256,
      createdAt: Date.now(),
    };
    const replicas = stored.replicas.map((r) => ({ key, ...r }));
    const store = this.deps.store;
    const recorded = last
      ? await store.completeProcessing(file.id, [variant], replicas)
      : await store.recordVariants(file.id, [variant], replicas);
    if (!recorded) {
      // The row was purged while we worked: nothing will delete this blob but us.
      await this.removeEverywhere(key);
      return;
    }
    this.deps.log.info(
      { id: file.id, variant: `${v.name} ${v.width}×${v.height}` },
      last ? 'image processed' : 'thumbnail made',
    );
    for (const r of replicas)
      if (r.state !== 'ok') await this.deps.repair(file.id, r.key).catch(() => undefined);
  }

  /**
   * Streams the original from the first healthy replica that serves it whole
   * and right into `path` (then, as a last resort, from a replica recorded
   * `missing`: states can lag behind the disk); throws when none could, a
   * transient failure (repairs restore copies), retried like any other.
   */
  private async fetchOriginal(file: FileRecord, path: string, signal: AbortSignal) {
    const rows = (await this.deps.store.replicasOf(file.id)).filter((r) => r.key === file.id);
    const placed = rankNodes(file.id, this.deps.layout.nodes());
    for (const state of ['ok', 'missing']) {
      const holders = new Set(rows.filter((r) => r.state === state).map((r) => r.node));
      for (const node of placed.filter((n) => holders.has(n.id))) {
        if (await this.download(file, node, path, signal, state === 'ok')) return;
      }
    }
    throw new Error(`no storage node could serve the original of ${file.id}`);
  }

  private async download(
    file: FileRecord,
    node: NodeAddress,
    path: string,
    signal: AbortSignal,
    recordedOk: boolean,
  ): Promise<boolean> {
    const { client, log, store } = this.deps;
    try {
      const res = await client.getBlob(node, file.id, { signal });
      if (res.statusCode !== 200) {
        await res.body.dump();
        if (res.statusCode === 404 && recordedOk) {
          await store.setReplicaState(file.id, node.id, 'missing');
          await this.deps.repair(file.id, file.id).catch(() => undefined);
        }
        return false;
      }
      const written = await writeHashedFile(res.body, path, signal);
      if (written.sha256 === file.sha256) return true;
      log.warn({ id: file.id, node: node.id }, 'original read with a wrong sha256');
      await rm(path, { force: true });
    } catch (err) {
      if (signal.aborted || !isTransportFailure(err)) throw err;
      log.warn(
        { id: file.id, node: node.id, err: (err as Error).message },
        'could not read the original, trying the next replica',
      );
      await rm(path, { force: true }); // what arrived before the failure
    }
    return false;
  }

  private async fail(file: FileRecord, reason: string): Promise<false> {
    await this.deps.store.failProcessing(file.id, reason);
    // Not an error of ours: the upload was accepted as an image and is still downloadable.
    this.deps.log.warn({ id: file.id, reason }, 'image processing failed');
    return false;
  }

  private async removeEverywhere(key: string): Promise<void> {
    await Promise.all(
      this.deps.layout
        .nodes()
        .map((n) => this.deps.client.deleteBlob(n, key).catch(() => undefined)),
    );
  }
}

function isLive(file: FileRecord, now = Date.now()): boolean {
  return file.state === 'committed' && file.deletedAt === null && now < file.expiresAt;
}

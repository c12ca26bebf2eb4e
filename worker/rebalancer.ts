/**
 * Rebalance: moves replicas to where the layout in force places them, after
 * a node was added, drained or reweighted, or a file was written while its
 * placement was offline.
 *
 * A pass walks every live file in id order (metadata only: a file already in
 * place costs no node request) and, for each blob whose replica rows differ
 * from its placement, under the blob's lock (the one repair takes):
 *
 * 1. a placement node without a row gets one (`missing`) first, then a copy
 *    from a healthy replica, sha256 checked by the target, and the row turns
 *    `ok`: a copy is always tracked before it exists, so a deletion that
 *    starts meanwhile deletes it too, and one that ran before is detected
 *    (the copy is removed at once; blob-copier.ts);
 * 2. then one replica the placement does not want is removed: only while the
 *    blob has REPLICATION_FACTOR `ok` copies on placement nodes, in as many
 *    distinct zones as the layout allows, each confirmed present with the
 *    right sha256 by its node (HEAD) just now. Its blob is deleted before its
 *    row, so a crash in between leaves a row anti-entropy finds missing, never
 *    an untracked copy.
 * One replica of a blob moves at a time (copy, then remove one). Rows that
 * are not `ok` on placement nodes are repair's: a repair is queued. A copy
 * that fails leaves the old replicas where they are; the blob counts as
 * `left` and the pass ends `incomplete`, to be retried.
 *
 * One pass runs at a time in the whole cluster (a Redis lease, extended while
 * it runs). Its progress and cursor are in Redis (rebalance-progress.ts): a
 * pass whose worker died resumes from its cursor once the lease expired.
 */
import type { Redis } from 'ioredis';
import type Redlock from 'redlock';
import {
  placementOf,
  zonesOf,
  zonesWanted,
  type Layout,
  type LayoutNode,
} from '../shared/layout.js';
import type { LayoutView } from '../shared/layout-watcher.js';
import type { Logger } from '../shared/logger.js';
import type { MetadataStore, PlacedFile, ReplicaRecord } from '../shared/metadata-store.js';
import { isUnreachable, type NodeClient } from '../shared/node-client.js';
import {
  readProgress,
  takeRebalanceRequest,
  writeProgress,
  type RebalanceProgress,
} from '../shared/rebalance-progress.js';
import { BlobCopier } from './blob-copier.js';
import type { ByteRate } from './byte-rate.js';
import { blobLockKey } from './replica-repairer.js';

export interface RebalanceDeps {
  store: MetadataStore;
  client: NodeClient;
  layout: LayoutView;
  redis: Redis;
  redlock: Redlock;
  log: Logger;
  /** The cluster's name: prefix of its shared Redis keys. */
  prefix: string;
  /** Copies every blob must keep (REPLICATION_FACTOR). */
  copies: number;
  /** REBALANCE_BYTES_PER_SECOND and REBALANCE_OBJECTS_PER_SECOND. */
  bytes: ByteRate;
  objects: ByteRate;
  /** Files placed at once (REBALANCE_CONCURRENCY): a move waits on several nodes in turn. */
  concurrency: number;
  /** Queues a repair of blob `key` of file `fileId` (rows not `ok` are repair's). */
  repair(fileId: string, key: string): Promise<unknown>;
  metrics?: RebalanceMetrics;
}

export interface RebalanceMetrics {
  replicaMoved(bytes: number): void;
  replicaRemoved(): void;
}

/** What placing one blob did. */
interface Placed {
  moved: number;
  removed: number;
  bytes: number;
  /** Some of it could not be done now. */
  left: boolean;
}

const PAGE = 100;
/** A pass whose worker died is resumed by another once this lease expired (it is extended while the pass runs). */
const LEASE_MS = 10_000;
/** Extended while held: a worker killed holding it keeps others off the blob this long at most. */
export const BLOB_LOCK_MS = 10_000;
/** An `incomplete` pass is tried again after this long. */
export const RETRY_AFTER_MS = 15_000;

export class Rebalancer {
  private readonly copier: BlobCopier;
  private running = false;
  private again = false;

  constructor(private readonly deps: RebalanceDeps) {
    this.copier = new BlobCopier(deps);
  }

  /**
   * Runs a pass now unless one runs here already (then another follows it),
   * or in another worker (then that one covers it: a pass restarts when the
   * layout changes under it).
   */
  async run(why: string): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        try {
          await this.leasedPass(why);
        } catch (err) {
          // Its progress stays `running`: runIfDue resumes it from the cursor.
          this.deps.log.warn({ err: (err as Error).message }, 'rebalance pass failed');
        }
      } while (this.again);
    } finally {
      this.running = false;
    }
  }

  /**
   * Runs a pass if the last one is for an older layout or died; or, a while
   * after the last one, if it left work or a gateway stored files off their placement.
   */
  async runIfDue(now = Date.now()): Promise<void> {
    if (this.running) return; // our own pass: its progress says `running`
    const progress = await readProgress(this.deps.redis, this.deps.prefix);
    const version = this.deps.layout.current().version;
    if (!progress || progress.layoutVersion !== version) return this.run(`layout ${version}`);
    if (progress.state === 'running') return this.run('resuming a pass');
    if (now - progress.updatedAt < RETRY_AFTER_MS) return;
    if (progress.state === 'incomplete') return this.run('retrying what the last pass left');
    if (await takeRebalanceRequest(this.deps.redis, this.deps.prefix))
      return this.run('files were stored off their placement');
  }

  private async leasedPass(why: string): Promise<void> {
    try {
      await this.deps.redlock.using(
        [`${this.deps.prefix}:lock:rebalance`],
        LEASE_MS,
        { retryCount: 0 },
        (signal) => this.pass(why, signal),
      );
    } catch (err) {
      if ((err as Error).name === 'ExecutionError') return; // another worker's pass
      throw err;
    }
  }

  /** One pass over every live file, from the cursor of an interrupted pass of this layout. */
  private async pass(why: string, lease: AbortSignal): Promise<void> {
    const layout = this.deps.layout.current();
    const previous = await readProgress(this.deps.redis, this.deps.prefix);
    const resume = previous?.state === 'running' && previous.layoutVersion === layout.version;
    const progress: RebalanceProgress = resume
      ? previous
      : await this.freshProgress(layout.version, previous);
    this.deps.log.info(
      { layout: layout.version, why, from: progress.cursor || undefined },
      resume ? 'rebalance resumed' : 'rebalance started',
    );
    await this.save(progress);
    for (;;) {
      if (lease.aborted || this.deps.layout.current().version !== layout.version) {
        this.again = !lease.aborted; // a newer layout: start over for it
        return;
      }
      const page = await this.deps.store.placementPage(progress.cursor || undefined, PAGE);
      if (page.length === 0) break;
      // Moves are counted as they happen; the cursor moves once the whole page is placed, so
      // a pass resumed after a crash looks at that page again (its files in place cost a read).
      await forEachLimited(page, this.deps.concurrency, async (file) => {
        if (lease.aborted) return;
        const placed = await this.placeFile(file, layout);
        progress.moved += placed.moved;
        progress.removed += placed.removed;
        progress.bytes += placed.bytes;
        if (placed.left) progress.left++;
        if (placed.moved + placed.removed > 0) await this.save(progress);
      });
      if (lease.aborted) return;
      progress.scanned += page.length;
      progress.cursor = page.at(-1)!.id;
      await this.save(progress);
    }
    progress.state = progress.left > 0 ? 'incomplete' : 'done';
    await this.save(progress);
    const { state, scanned, moved, removed, bytes, left } = progress;
    this.deps.log.info(
      { layout: layout.version, state, scanned, moved, removed, bytes, left },
      'rebalance pass finished',
    );
  }

  /**
   * A new pass from the first file. Another pass for the same layout (after
   * one left work) goes on counting what the rebalance to it moved so far.
   */
  private async freshProgress(
    layoutVersion: number,
    previous: RebalanceProgress | undefined,
  ): Promise<RebalanceProgress> {
    const { objects } = await this.deps.store.counts(this.deps.copies);
    const now = Date.now();
    const same = previous?.layoutVersion === layoutVersion ? previous : undefined;
    return {
      state: 'running',
      layoutVersion,
      cursor: '',
      total: objects,
      scanned: 0,
      moved: same?.moved ?? 0,
      removed: same?.removed ?? 0,
      bytes: same?.bytes ?? 0,
      left: 0,
      startedAt: same?.startedAt ?? now,
      updatedAt: now,
    };
  }

  private async save(progress: RebalanceProgress): Promise<void> {
    progress.updatedAt = Date.now();
    await writeProgress(this.deps.redis, this.deps.prefix, progress).catch((err: Error) =>
      this.deps.log.warn({ err: err.message }, 'could not record the rebalance progress'),
    );
  }

  /** Places each blob of `file` (the original, then its variants) that is not where `layout` wants it. */
  async placeFile(file: PlacedFile, layout: Layout): Promise<Placed> {
    const total: Placed = { moved: 0, removed: 0, bytes: 0, left: false };
    for (const blob of file.blobs) {
      const want = placementOf(blob.key, layout.nodes, this.deps.copies);
      const rows = file.replicas.filter((r) => r.key === blob.key);
      if (inPlace(rows, want)) continue;
      const placed = await this.placeBlobLocked(file.id, blob, want);
      total.moved += placed.moved;
      total.removed += placed.removed;
      total.bytes += placed.bytes;
      total.left ||= placed.left;
    }
    return total;
  }

  private async placeBlobLocked(fileId: string, blob: Blob, want: LayoutNode[]): Promise<Placed> {
    try {
      return await this.deps.redlock.using(
        [blobLockKey(this.deps.prefix, blob.key)],
        BLOB_LOCK_MS,
        { retryCount: 0 },
        () => this.placeBlob(fileId, blob, want),
      );
    } catch (err) {
      if ((err as Error).name !== 'ExecutionError') throw err;
      // A repair (or another move) of this blob is under way: its turn now, ours next pass.
      return { moved: 0, removed: 0, bytes: 0, left: true };
    }
  }

  /** Copies to each placement node lacking the blob, removing one surplus replica after each. */
  private async placeBlob(fileId: string, blob: Blob, want: LayoutNode[]): Promise<Placed> {
    const placed: Placed = { moved: 0, removed: 0, bytes: 0, left: false };
    /** Nodes this call copied to: their PUT report checked the sha256 a moment ago. */
    const copied = new Set<string>();
    let rows = await this.rowsOf(fileId, blob.key);
    for (const target of want) {
      const row = rows.find((r) => r.node === target.id);
      if (row && row.state !== 'ok') {
        await this.deps.repair(fileId, blob.key); // repair's row: it copies, we wait for it
        placed.left = true;
      }
      if (row) continue;
      const bytes = await this.copyTo(fileId, blob, target, rows, want);
      if (bytes === 'gone') return placed;
      rows = await this.rowsOf(fileId, blob.key);
      if (bytes === 'failed') {
        placed.left = true;
        continue;
      }
      copied.add(target.id);
      placed.moved++;
      placed.bytes += bytes;
      const removed = await this.removeOneSurplus(blob, rows, want, copied);
      if (removed === 'removed') {
        placed.removed++;
        rows = await this.rowsOf(fileId, blob.key);
      }
    }
    // Surplus with no copy to make first (a node drained while its blobs are already elsewhere).
    for (;;) {
      const removed = await this.removeOneSurplus(blob, rows, want, copied);
      if (removed !== 'removed') {
        if (removed === 'unsafe') placed.left = true;
        return placed;
      }
      placed.removed++;
      rows = await this.rowsOf(fileId, blob.key);
    }
  }

  /** A verified copy of `blob` on `target`, tracked by a row made first; bytes copied. */
  private async copyTo(
    fileId: string,
    blob: Blob,
    target: LayoutNode,
    rows: ReplicaRecord[],
    want: LayoutNode[],
  ): Promise<number | 'failed' | 'gone'> {
    await this.deps.objects.take(1);
    // Replicas leaving first: reads from them spare the nodes that keep serving.
    const sources = rows
      .filter((r) => r.state === 'ok')
      .sort((a, b) => Number(isWanted(a.node, want)) - Number(isWanted(b.node, want)))
      .map((r) => r.node);
    if (sources.length === 0) return 'failed';
    if (!(await this.deps.store.addReplica(fileId, blob.key, target.id, 'missing'))) return 'gone';
    try {
      const copied = await this.copier.copy(
        blob.key,
        target,
        sources,
        blob.sha256,
        this.deps.bytes,
      );
      if (copied === 'target-down') return 'failed'; // its row stays `missing`: repair's now
      if (!(await this.copier.keep(fileId, blob.key, target))) return 'gone';
      this.deps.metrics?.replicaMoved(copied.bytes);
      this.deps.log.info(
        { key: blob.key, from: copied.from, to: target.id, bytes: copied.bytes },
        'replica moved to its placement',
      );
      return copied.bytes;
    } catch (err) {
      this.deps.log.warn(
        { key: blob.key, node: target.id, err: (err as Error).message },
        'rebalance copy failed; the old replicas stay',
      );
      return 'failed';
    }
  }

  /**
   * Removes one replica the placement does not want (a broken one first),
   * only once the placement's copies are all there and verified.
   */
  private async removeOneSurplus(
    blob: Blob,
    rows: ReplicaRecord[],
    want: LayoutNode[],
    copied: ReadonlySet<string>,
  ): Promise<'removed' | 'none' | 'unsafe'> {
    const surplus = rows
      .filter((r) => !isWanted(r.node, want))
      .sort((a, b) => Number(a.state === 'ok') - Number(b.state === 'ok'));
    if (surplus.length === 0) return 'none';
    if (!(await this.safeToRemove(blob, rows, want, copied))) return 'unsafe';
    const row = surplus[0]!;
    const node = this.deps.layout.node(row.node);
    try {
      if (node) await this.deps.client.deleteBlob(node, blob.key);
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      return 'unsafe'; // still there: the next pass deletes it
    }
    await this.deps.store.forgetReplica(blob.key, row.node);
    this.deps.metrics?.replicaRemoved();
    this.deps.log.info({ key: blob.key, node: row.node }, 'surplus replica removed');
    return 'removed';
  }

  /**
   * True when the placement nodes hold REPLICATION_FACTOR `ok` copies of
   * `blob`, in as many zones as the layout allows, each confirmed by its node
   * (just now, or by the PUT report of a copy this move made: `copied`).
   */
  private async safeToRemove(
    blob: Blob,
    rows: ReplicaRecord[],
    want: LayoutNode[],
    copied: ReadonlySet<string>,
  ): Promise<boolean> {
    const keepers = want.filter((n) => rows.some((r) => r.node === n.id && r.state === 'ok'));
    if (keepers.length < this.deps.copies) return false;
    if (zonesOf(keepers).length < zonesWanted(this.deps.layout.nodes(), this.deps.copies))
      return false;
    const checks = await Promise.all(
      keepers
        .filter((n) => !copied.has(n.id))
        .map((n) =>
          this.deps.client.statBlob(n, blob.key).then(
            (stat) => stat?.sha256 === blob.sha256,
            () => false,
          ),
        ),
    );
    return checks.every(Boolean);
  }

  private async rowsOf(fileId: string, key: string): Promise<ReplicaRecord[]> {
    return (await this.deps.store.replicasOf(fileId)).filter((r) => r.key === key);
  }
}

type Blob = PlacedFile['blobs'][number];

/** Runs `each` on every item, at most `limit` at a time. */
async function forEachLimited<T>(
  items: T[],
  limit: number,
  each: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await each(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function isWanted(node: string, want: LayoutNode[]): boolean {
  return want.some((n) => n.id === node);
}

/** Rows exactly on the placement's nodes (whatever their state: broken ones are repair's). */
function inPlace(rows: ReplicaRecord[], want: LayoutNode[]): boolean {
  return rows.length === want.length && want.every((n) => rows.some((r) => r.node === n.id));
}

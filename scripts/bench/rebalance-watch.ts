/**
 * What the rebalance suite reads while and after the worker moves replicas:
 * a pass followed through GET /api/cluster to `done`, the blobs the
 * metadata places on a node, and whether every replica row and every disk
 * now matches the layout.
 */
import type { Dispatcher } from 'undici';
import { placementOf, type Layout } from '../../shared/layout.js';
import type { MetadataStore, PlacedFile } from '../../shared/metadata-store.js';
import {
  blobsOnDisk,
  getCluster,
  waitFor,
  type BlobFile,
  type RebalanceState,
} from '../cluster-control.js';

/** A pass of one layout version, as /api/cluster showed it from the layout change to `done`. */
export interface PassWatch {
  layoutVersion: number;
  /** Seconds from the layout change until the pass for this version was `done` (its updated_at). */
  seconds: number;
  /** Seconds from the layout change until /api/cluster showed the first move (polled every 0.5 s). */
  firstMoveS: number | undefined;
  /**
   * The passes' own counts, each as last seen and summed (a pass that ended
   * between two polls may have counted a little more), and their span, from
   * the first's started_at to the last's updated_at, in s.
   */
  pass: { moved: number; removed: number; bytes: number; left: number; seconds: number };
  /**
   * Passes seen for this version: more than one when a pass ended
   * `incomplete` and was retried, or a scheduled pass (REBALANCE_SCHEDULE)
   * was asked for during it and ran right after.
   */
  passes: number;
  /** The most files /api/cluster counted under-replicated while the pass ran (polled every 0.5 s). */
  maxUnderReplicated: number;
  /** Nodes seen other than `online` meanwhile ("node2 suspect"). */
  notOnline: string[];
  /** The window on the monotonic clock, µs (what profile-summary.ts --from/--to take). */
  windowUs: { from: string; to: string };
}

/** Where a layout change was saved: wall clock (the API's timestamps) and monotonic. */
export interface ChangeMark {
  layoutVersion: number;
  wallMs: number;
  at: number;
  hrUs: bigint;
}

export function markChange(layoutVersion: number): ChangeMark {
  return {
    layoutVersion,
    wallMs: Date.now(),
    at: performance.now(),
    hrUs: process.hrtime.bigint() / 1000n,
  };
}

/**
 * Polls /api/cluster until the rebalance says `done` for the version of
 * `change`, in a pass that started after it (Redis may hold an older
 * cluster's progress under the same name); throws after `timeoutMs`.
 */
export async function watchPass(
  gateway: string,
  dispatcher: Dispatcher,
  change: ChangeMark,
  timeoutMs: number,
): Promise<PassWatch> {
  const since = () => (performance.now() - change.at) / 1000;
  const passes = new Map<string, RebalanceState>();
  const notOnline = new Set<string>();
  let firstMoveS: number | undefined;
  let maxUnderReplicated = 0;
  const state = await waitFor(
    `the rebalance of layout ${change.layoutVersion} to be done`,
    async () => {
      const s = await getCluster(gateway, dispatcher);
      maxUnderReplicated = Math.max(maxUnderReplicated, s.under_replicated);
      for (const n of s.nodes) if (n.status !== 'online') notOnline.add(`${n.id} ${n.status}`);
      const r = s.rebalance;
      if (!r || r.layout_version !== change.layoutVersion) return;
      if (Date.parse(r.started_at) < change.wallMs - 1000) return;
      passes.set(r.started_at, r);
      if (firstMoveS === undefined && r.moved > 0) firstMoveS = since();
      return r.state === 'done' && s;
    },
    timeoutMs,
    500,
  );
  // To the pass's own `done` (same clock as the change), not to the poll that saw it.
  const seconds = Math.max((Date.parse(state.rebalance!.updated_at) - change.wallMs) / 1000, 0);
  const seen = [...passes.values()];
  const sum = (field: 'moved' | 'removed' | 'bytes') => seen.reduce((n, p) => n + p[field], 0);
  const last = state.rebalance!;
  return {
    layoutVersion: change.layoutVersion,
    seconds,
    firstMoveS,
    pass: {
      moved: sum('moved'),
      removed: sum('removed'),
      bytes: sum('bytes'),
      left: last.left,
      seconds: (Date.parse(last.updated_at) - Date.parse(seen[0]!.started_at)) / 1000,
    },
    passes: seen.length,
    maxUnderReplicated,
    notOnline: [...notOnline],
    windowUs: {
      from: String(change.hrUs),
      to: String(process.hrtime.bigint() / 1000n),
    },
  };
}

/** Every live file with its blobs and replica rows, in id order (the rebalance's own order). */
export async function placedFiles(store: MetadataStore): Promise<PlacedFile[]> {
  const files: PlacedFile[] = [];
  for (let after: string | undefined; ;) {
    const page = await store.placementPage(after, 500);
    if (page.length === 0) return files;
    files.push(...page);
    after = page.at(-1)!.id;
  }
}

/** A blob with a replica row on some node, and the other nodes holding it `ok`. */
export interface PlacedBlob {
  key: string;
  sha256: string;
  size: number;
  others: string[];
}

/** The blobs with a replica row on `node`, in the rebalance's order. */
export function blobsPlacedOn(files: PlacedFile[], node: string): PlacedBlob[] {
  const blobs: PlacedBlob[] = [];
  for (const file of files) {
    for (const blob of file.blobs) {
      const rows = file.replicas.filter((r) => r.key === blob.key);
      if (!rows.some((r) => r.node === node)) continue;
      const others = rows.filter((r) => r.node !== node && r.state === 'ok').map((r) => r.node);
      blobs.push({ ...blob, others });
    }
  }
  return blobs;
}

export interface PlacementCheck {
  /** Live blobs looked at. */
  blobs: number;
  /** Blobs whose replica rows are not exactly their placement's nodes, each `ok`. */
  offRows: number;
  /** Copies on a disk the placement does not name: left behind by a move. */
  extraOnDisk: number;
  /** Placement nodes whose disk lacks the blob, or names another sha256. */
  missingOnDisk: number;
  /** A few of the problems, for the failures list. */
  examples: string[];
}

/**
 * Compares every live blob's replica rows and the disks (`dirs`: node id →
 * data directory, from the file names, as cluster-control reads them) with
 * where `layout` places it.
 */
export async function checkPlacement(
  files: PlacedFile[],
  layout: Layout,
  copies: number,
  dirs: Map<string, string>,
): Promise<PlacementCheck> {
  const disks = new Map<string, Map<string, BlobFile>>();
  for (const [id, dir] of dirs) disks.set(id, await blobsOnDisk(dir));
  const check: PlacementCheck = {
    blobs: 0,
    offRows: 0,
    extraOnDisk: 0,
    missingOnDisk: 0,
    examples: [],
  };
  const problem = (line: string) => {
    if (check.examples.length < 10) check.examples.push(line);
  };
  for (const file of files) {
    for (const blob of file.blobs) {
      check.blobs++;
      const want = new Set(placementOf(blob.key, layout.nodes, copies).map((n) => n.id));
      const rows = file.replicas.filter((r) => r.key === blob.key);
      const rowsOk =
        rows.length === want.size && rows.every((r) => want.has(r.node) && r.state === 'ok');
      if (!rowsOk) {
        check.offRows++;
        const seen = rows.map((r) => `${r.node}:${r.state}`).join(',');
        problem(`${blob.key}: rows ${seen}, placement ${[...want].join(',')}`);
      }
      for (const [id, disk] of disks) {
        const held = disk.get(blob.key);
        if (want.has(id) && held?.sha256 !== blob.sha256) {
          check.missingOnDisk++;
          problem(`${blob.key}: not on ${id}'s disk, which the placement names`);
        } else if (!want.has(id) && held) {
          check.extraOnDisk++;
          problem(`${blob.key}: still on ${id}'s disk, off its placement`);
        }
      }
    }
  }
  return check;
}

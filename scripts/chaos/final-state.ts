/**
 * The cluster as it is after healing, read from the metadata store (every
 * file, its replica rows, the layout) and from the nodes' disks (the blob
 * files, hashed when `verify`): what the checker compares the history with.
 */
import pg from 'pg';
import { placementOf, type LayoutNode } from '../../shared/layout.js';
import { blobsOnDisk, hashFile, type BlobFile } from '../cluster-control.js';
import type { FinalFile, FinalState } from './history.js';
import type { Lab } from './lab.js';

/** Copies every live file must have (the cluster's REPLICATION_FACTOR, its default). */
export const REPLICATION_FACTOR = 3;
/**
 * A file this close to its expiry counts as expired: the worker may be
 * removing its blobs while they are being looked at.
 */
const EXPIRY_MARGIN_MS = 5000;

interface FileRow {
  id: string;
  sha256: string;
  max_downloads: number;
  downloads_used: number;
  expires_at: string;
  deleted_at: string | null;
}

function statusOf(row: FileRow, now: number): string {
  if (row.deleted_at !== null) return 'deleted';
  if (Number(row.expires_at) <= now + EXPIRY_MARGIN_MS) return 'expired';
  if (row.max_downloads > 0 && row.downloads_used >= row.max_downloads) return 'exhausted';
  return 'active';
}

/** Every committed file with the nodes holding a verified copy of its original. */
export async function readFinalFiles(lab: Lab, verify: boolean): Promise<FinalFile[]> {
  const client = new pg.Client({ connectionString: lab.cluster.databaseUrl });
  await client.connect();
  let files: FileRow[];
  let replicas: { file_id: string; node: string }[];
  let layout: LayoutNode[];
  try {
    files = (
      await client.query<FileRow>(
        `SELECT id, sha256, max_downloads, downloads_used, expires_at, deleted_at
           FROM files WHERE state = 'committed'`,
      )
    ).rows;
    // The original's rows (a variant's blob has a key of its own).
    replicas = (
      await client.query<{ file_id: string; node: string }>(
        `SELECT file_id, node FROM replicas WHERE key = file_id AND state = 'ok'`,
      )
    ).rows;
    const [newest] = (
      await client.query<{ nodes: string }>(
        'SELECT nodes FROM layouts ORDER BY version DESC LIMIT 1',
      )
    ).rows;
    layout = JSON.parse(newest!.nodes) as LayoutNode[];
  } finally {
    await client.end();
  }
  const disks = new Map<string, Map<string, BlobFile>>();
  for (const node of lab.cluster.nodes) disks.set(node.id, await blobsOnDisk(node.dataDir));
  const rows = new Map<string, Set<string>>();
  for (const r of replicas) rows.set(r.file_id, (rows.get(r.file_id) ?? new Set()).add(r.node));

  const now = Date.now();
  const out: FinalFile[] = [];
  for (const f of files) {
    const verified: string[] = [];
    for (const node of rows.get(f.id) ?? []) {
      const blob = disks.get(node)?.get(f.id);
      if (!blob || blob.sha256 !== f.sha256) continue;
      if (verify && (await hashFile(blob.path).catch(() => '')) !== f.sha256) continue;
      verified.push(node);
    }
    out.push({
      file: f.id,
      status: statusOf(f, now),
      maxDownloads: f.max_downloads,
      downloadsUsed: f.downloads_used,
      expiresAt: Number(f.expires_at),
      placement: placementOf(f.id, layout, REPLICATION_FACTOR).map((n) => n.id),
      verified: verified.sort(),
    });
  }
  return out;
}

/** Live files without a verified copy on every node the layout places them on. */
export function underReplicated(files: FinalFile[]): FinalFile[] {
  return files.filter(
    (f) =>
      (f.status === 'active' || f.status === 'exhausted') &&
      f.placement.some((n) => !f.verified.includes(n)),
  );
}

export function finalState(
  files: FinalFile[],
  healedAt: number,
  redundantAt: number | undefined,
): FinalState {
  return {
    healedAt,
    ...(redundantAt !== undefined && { redundantAt }),
    replicationFactor: REPLICATION_FACTOR,
    files,
  };
}

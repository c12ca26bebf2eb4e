/**
 * The storage node's wire protocol: what the node (storage-node/app.ts) and
 * its client (shared/node-client.ts) must agree on. The header names, the
 * chain header's format, a write's replica report, and the shapes of the
 * health, listing, scrub and compose answers. The routes and statuses are described in
 * docs/storage-node.md.
 */
import type { NodeAddress } from './config.js';
import { REQUEST_ID_HEADER } from './request-context.js';

/** Headers of the internal protocol. */
export const H = {
  chain: 'x-trove-chain',
  hop: 'x-trove-hop',
  sha256: 'x-trove-sha256',
  /**
   * On a blob read, `before-send`: the node checked every byte of this
   * response against the blob's checksums before sending it (a small blob
   * read whole, a larger one block by block), so a cut stream never carries
   * a wrong byte and the gateway need not hash it again. Absent: the node
   * checks the whole blob's sha256 as it streams and cuts the stream at the
   * end if it fails (a blob whose block sums are missing or damaged).
   */
  verified: 'x-trove-verified',
  /** The id of the request or job in hand, so the node logs under it too. */
  requestId: REQUEST_ID_HEADER,
} as const;

/** The `x-trove-chain` header: the nodes a write is forwarded to, as `id=url,id=url`. */
export function formatChain(chain: NodeAddress[]): string {
  return chain.map((n) => `${n.id}=${n.url}`).join(',');
}

/** Reads an `x-trove-chain` header (absent or empty: no successor); undefined when malformed. */
export function parseChain(header: string | undefined): NodeAddress[] | undefined {
  if (!header) return [];
  const chain: NodeAddress[] = [];
  for (const entry of header.split(',')) {
    const eq = entry.indexOf('=');
    const id = entry.slice(0, eq).trim();
    const url = entry.slice(eq + 1).trim();
    if (eq <= 0 || !/^[A-Za-z0-9_-]{1,64}$/.test(id) || !/^https?:\/\/[^\s/]+$/.test(url))
      return undefined;
    chain.push({ id, url });
  }
  return chain;
}

/** What one node did with a replicated write. */
export type ReplicaOutcome =
  | { node: string; ok: true; sha256: string; size: number }
  | { node: string; ok: false; code?: string; error: string };

/**
 * A chain's answer to PUT /blobs/:key: one outcome per node it was given. The
 * node answers it whatever its status (201 when it stored the blob itself,
 * the status of its own failure otherwise), as JSON.
 */
export interface PutReport {
  key: string;
  replicas: ReplicaOutcome[];
}

/** A PUT's answer body read as the report for `key`; undefined when it is not one. */
export function parsePutReport(key: string, text: string): PutReport | undefined {
  const body = safeJson(text) as Partial<PutReport> | undefined;
  return Array.isArray(body?.replicas) ? { key, replicas: body.replicas } : undefined;
}

/** GET /health. */
export interface NodeHealth {
  id: string;
  status: 'ok';
  objects: number;
  bytes: number;
  free_bytes: number;
  total_bytes: number;
  uptime_s: number;
  /** The scrubber's state, when the node runs one. */
  scrub?: unknown;
}

/** A blob as a node lists it. */
export interface ListedBlob {
  key: string;
  size: number;
  sha256: string;
  mtimeMs: number;
}

/** GET /blobs: one page of blobs; `next` is the cursor of the following page, null after the last. */
export interface BlobListing {
  blobs: ListedBlob[];
  next: string | null;
}

/** POST /scrub: whether a pass started now (false: one was running), and the scrubber's state. */
export interface ScrubStarted {
  id: string;
  started: boolean;
  scrub: unknown;
}

/** The most parts one POST /blobs/:key/compose may name. */
export const MAX_COMPOSE_PARTS = 10_000;

/** POST /blobs/:key/compose: the parts to concatenate, in order, and optionally the result's sha256. */
export interface ComposeRequest {
  parts: string[];
  sha256?: string;
}

/** POST /blobs/:key/compose, 201: the blob the node composed and committed. */
export interface Composed {
  node: string;
  key: string;
  size: number;
  sha256: string;
}

/**
 * POST /blobs/:key/compose, 409: parts this node does not have (absent before
 * it started, or found corrupt or gone while it read them); nothing was stored.
 */
export interface MissingPartsAnswer {
  error: { code: 'MISSING_PARTS'; message: string };
  missing: string[];
}

/** What a compose came to, as the client hands it back: composed, or refused for missing parts. */
export type ComposeResult =
  { ok: true; size: number; sha256: string } | { ok: false; missing: string[] };

/**
 * A compose's answer read from its status and body: the blob (201) or the
 * missing parts (409 MISSING_PARTS); undefined for any other answer.
 */
export function parseComposeAnswer(status: number, text: string): ComposeResult | undefined {
  const body = safeJson(text) as Partial<Composed & MissingPartsAnswer> | undefined;
  if (status === 201 && typeof body?.size === 'number' && typeof body.sha256 === 'string')
    return { ok: true, size: body.size, sha256: body.sha256 };
  if (
    status === 409 &&
    body?.error?.code === 'MISSING_PARTS' &&
    Array.isArray(body.missing) &&
    body.missing.every((k) => typeof k === 'string')
  )
    return { ok: false, missing: body.missing };
  return undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A part of a staged upload (PUT /staging/:key?offset=N): where it starts, its size and sha256. */
export interface StagedPart {
  offset: number;
  size: number;
  sha256: string;
}

/** POST /staging/:key/commit: the blob the staged bytes become, and the parts they must be. */
export interface StagingCommitRequest {
  blob: string;
  parts: StagedPart[];
}

/** A refused staged write or commit (409): the bytes this node holds staged, for the log. */
export interface StagingRefusal {
  error: { code: 'STAGING_GAP' | 'STAGING_MISMATCH'; message: string };
  have: number;
}

/** GET /staging: the staged files a node holds. */
export interface StagingListing {
  staged: { key: string; size: number; mtimeMs: number }[];
}

/** A staged commit's answer: the blob (201), or the bytes the node holds when they are not the parts (409). */
export type StagingCommitResult =
  { ok: true; size: number; sha256: string } | { ok: false; have: number; message: string };

/** A staged commit's answer read from its status and body; undefined for any other answer. */
export function parseStagingCommitAnswer(
  status: number,
  text: string,
): StagingCommitResult | undefined {
  const body = safeJson(text) as Partial<Composed & StagingRefusal> | undefined;
  if (status === 201 && typeof body?.size === 'number' && typeof body.sha256 === 'string')
    return { ok: true, size: body.size, sha256: body.sha256 };
  if (status === 409 && body?.error?.code === 'STAGING_MISMATCH' && typeof body.have === 'number')
    return { ok: false, have: body.have, message: body.error.message };
  return undefined;
}

/**
 * The large-object figures: one generated file, uploaded and downloaded in
 * several rounds, each side's transfers interleaved with the references'
 * so that drift on a noisy machine hits both. The median round is reported.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { findExecutable, progress, safeJson, settle, type BenchContext } from './context.js';
import { curlGet, flushFile, getFile, putFile, threeFsyncedFiles, type Transfer } from './large.js';
import { writeLargeFile } from './payload.js';

export type LargeKind =
  | 'trovePut'
  | 'nginxPut'
  | 'threeFsyncedFiles'
  | 'troveGet'
  | 'nginxGet'
  | 'troveGetCurl'
  | 'nginxGetCurl';

export interface LargeResults {
  bytes: number;
  sha256: string;
  /** MB/s (10^6 bytes per second) of each timed transfer, in order. */
  mbps: Partial<Record<LargeKind, number[]>>;
  /** Median of `mbps`. */
  median: Partial<Record<LargeKind, number>>;
}

const LARGE_NAME = 'large.jpg';

export async function runLargeSuite(ctx: BenchContext): Promise<LargeResults> {
  const { opts } = ctx;
  const bytes = opts.largeBytes;
  const source = join(ctx.www, LARGE_NAME);
  progress(`writing a ${bytes / 2 ** 20} MiB test file…`);
  const sha256 = await writeLargeFile(source, bytes);
  const results: LargeResults = { bytes, sha256, mbps: {}, median: {} };
  const record = (kind: LargeKind, seconds: number) => {
    const mbps = bytes / seconds / 1e6;
    (results.mbps[kind] ??= []).push(mbps);
    progress(`  ${kind}: ${mbps.toFixed(0)} MB/s`);
  };

  const ids: string[] = [];
  for (let round = 1; round <= opts.largeRounds; round++) {
    progress(`large uploads, round ${round} of ${opts.largeRounds}`);
    await settle();
    const url = `${ctx.trove.origin}${ctx.trove.prefix}/upload/bench-large-${round}.jpg?max_downloads=0`;
    const put = await attempt(ctx, `PUT ${url}`, () => putFile(url, source, bytes, ctx.dispatcher));
    const id = put && checkUpload(ctx, url, put, bytes, sha256);
    if (id) {
      ids.push(id);
      record('trovePut', put.seconds);
    }

    if (ctx.nginx) {
      await settle();
      const davPath = join(ctx.www, 'dav', `large-${round}.jpg`);
      const davUrl = `${ctx.nginx.url}/dav/large-${round}.jpg`;
      const dav = await attempt(ctx, `PUT ${davUrl}`, () =>
        putFile(davUrl, source, bytes, ctx.dispatcher),
      );
      if (dav && dav.status >= 200 && dav.status < 300) record('nginxPut', dav.seconds);
      else if (dav) ctx.failures.push(`PUT ${davUrl} → ${dav.status} ${dav.answer.slice(0, 200)}`);
      await flushFile(davPath).catch(() => {});
      await rm(davPath, { force: true });
    }

    await settle();
    try {
      const floor = await threeFsyncedFiles(source, ctx.scratch);
      record('threeFsyncedFiles', floor.seconds);
      await Promise.all(floor.paths.map((p) => rm(p, { force: true })));
    } catch (err) {
      ctx.failures.push(`three-fsynced-files in ${ctx.scratch}: ${(err as Error).message}`);
    }
  }

  const curl = findExecutable('curl');
  for (let round = 1; round <= opts.largeRounds; round++) {
    progress(`large downloads, round ${round} of ${opts.largeRounds}`);
    const id = ids[(round - 1) % Math.max(1, ids.length)];
    const troveUrl = id && `${ctx.trove.origin}${ctx.trove.prefix}/download/${id}`;
    const nginxUrl = ctx.nginx && `${ctx.nginx.url}/${LARGE_NAME}`;
    if (troveUrl) {
      await settle();
      const got = await attempt(ctx, `GET ${troveUrl}`, () => getFile(troveUrl, ctx.dispatcher));
      if (got && checkDownload(ctx, troveUrl, got, bytes, sha256)) record('troveGet', got.seconds);
    }
    if (nginxUrl) {
      await settle();
      const got = await attempt(ctx, `GET ${nginxUrl}`, () => getFile(nginxUrl, ctx.dispatcher));
      if (got && checkDownload(ctx, nginxUrl, got, bytes, sha256)) record('nginxGet', got.seconds);
    }
    // Context only: the same downloads with curl, bytes counted but not hashed.
    for (const [kind, url] of [
      ['troveGetCurl', troveUrl],
      ['nginxGetCurl', nginxUrl],
    ] as const) {
      if (!curl || !url) continue;
      await settle();
      const got = await attempt(ctx, `curl ${url}`, () => curlGet(curl, url));
      if (got && got.status === 200 && got.bytes === bytes) record(kind, got.seconds);
      else if (got)
        ctx.failures.push(`curl ${url} → ${got.status}, ${got.bytes} bytes (expected ${bytes})`);
    }
  }

  for (const [kind, values] of Object.entries(results.mbps))
    results.median[kind as LargeKind] = median(values);
  return results;
}

async function attempt(
  ctx: BenchContext,
  what: string,
  run: () => Promise<Transfer>,
): Promise<Transfer | undefined> {
  try {
    return await run();
  } catch (err) {
    ctx.failures.push(`${what}: ${(err as Error).message}`);
    return undefined;
  }
}

/** The Trove id of a good upload; records a failure otherwise. */
function checkUpload(
  ctx: BenchContext,
  url: string,
  put: Transfer,
  bytes: number,
  sha256: string,
): string | undefined {
  const answer = safeJson(put.answer) as
    { id?: string; sha256?: string; size?: number } | undefined;
  if (put.status !== 201 || !answer?.id) {
    ctx.failures.push(`PUT ${url} → ${put.status} ${put.answer.slice(0, 200)}`);
    return undefined;
  }
  if (answer.sha256 !== sha256 || answer.size !== bytes) {
    ctx.failures.push(
      `PUT ${url}: Trove stored sha256 ${answer.sha256} / ${answer.size} bytes, sent ${sha256} / ${bytes}`,
    );
    return undefined;
  }
  return answer.id;
}

function checkDownload(
  ctx: BenchContext,
  url: string,
  got: Transfer,
  bytes: number,
  sha256: string,
): boolean {
  if (got.status === 200 && got.bytes === bytes && got.sha256 === sha256) return true;
  ctx.failures.push(
    `GET ${url} → ${got.status}, ${got.bytes} bytes, sha256 ${got.sha256} (expected ${bytes} bytes, ${sha256})`,
  );
  return false;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

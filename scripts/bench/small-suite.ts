/**
 * The 64 KiB figures: uploads (Trove PUT vs nginx WebDAV PUT, and vs the
 * three-copy sync limit of the disk, measured first) and downloads (Trove
 * GET vs nginx sendfile) at each concurrency, Trove and nginx back to back
 * so both see the same machine state.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { progress, safeJson, settle, type BenchContext } from './context.js';
import { jpegBody, sha256 } from './payload.js';
import { getFile } from './large.js';
import {
  discardResponseBodies,
  measureSmall,
  smallFailures,
  type Side,
  type SmallRun,
  type SmallSpec,
} from './small.js';
import { named } from './procfs.js';
import { measureSyncLimit, type SyncLimit } from './sync-limit.js';
import { ms } from './table.js';

export const SMALL_BYTES = 64 * 1024;
/** Downloads checked byte for byte before the timed runs, per side. */
const SPOT_CHECKS = 5;
const UPLOAD_CONCURRENCY = 8;
/** Seconds of `O_DSYNC` writes for the sync limit. */
const SYNC_LIMIT_S = 2.5;

export interface SmallResults {
  runs: SmallRun[];
  /** The three-copy sync limit, undefined if it could not be measured. */
  syncLimit: SyncLimit | undefined;
}

export async function runSmallSuite(ctx: BenchContext): Promise<SmallResults> {
  const runs: SmallRun[] = [];
  const syncLimit = await syncLimitOf(ctx);
  const sides: Side[] = ctx.nginx ? ['trove', 'nginx'] : ['trove'];
  const { opts } = ctx;
  if (!discardResponseBodies()) {
    ctx.notes.push(
      'autocannon internals changed: its response-body text is kept, so GET figures are limited by the client',
    );
  }
  const body = jpegBody(SMALL_BYTES);
  let seq = 0;

  for (const connections of opts.connections) {
    for (const side of sides) {
      await settle();
      const tag = `${side}-c${connections}-${Date.now().toString(36)}`;
      const nextPath =
        side === 'trove'
          ? () => `${ctx.trove.prefix}/upload/bench-${tag}-${seq++}.jpg?max_downloads=0`
          : () => `/dav/bench-${tag}-${seq++}.jpg`;
      runs.push(
        await measured(ctx, { ...specFor(ctx, side), op: 'put', connections, body, nextPath }),
      );
    }
  }

  const ids = await prepareDownloads(ctx);
  if (ids.length === 0) return { runs, syncLimit };
  for (const connections of opts.connections) {
    for (const side of sides) {
      await settle();
      let i = 0;
      const nextPath =
        side === 'trove'
          ? () => `${ctx.trove.prefix}/download/${ids[i++ % ids.length]}`
          : () => `/small/${i++ % ids.length}.jpg`;
      runs.push(await measured(ctx, { ...specFor(ctx, side), op: 'get', connections, nextPath }));
    }
  }
  return { runs, syncLimit };
}

async function syncLimitOf(ctx: BenchContext): Promise<SyncLimit | undefined> {
  await settle();
  progress(`three-copy sync limit: ${SYNC_LIMIT_S} s of O_DSYNC 64 KiB writes in ${ctx.scratch}…`);
  try {
    const limit = measureSyncLimit(ctx.scratch, SYNC_LIMIT_S);
    progress(
      `three-copy sync limit: ${limit.dsyncWritesPerS.toFixed(0)} writes/s ÷ 3 = ${limit.threeCopyPerS.toFixed(0)}/s`,
    );
    return limit;
  } catch (err) {
    ctx.failures.push(`O_DSYNC writes in ${ctx.scratch}: ${(err as Error).message}`);
    return undefined;
  }
}

function specFor(ctx: BenchContext, side: Side): Pick<SmallSpec, 'side' | 'origin' | 'servers'> {
  if (side === 'trove') return { side, origin: ctx.trove.origin, servers: ctx.trove.processes };
  return { side, origin: ctx.nginx!.url, servers: named('nginx', () => ctx.nginx!.pids()) };
}

async function measured(ctx: BenchContext, spec: SmallSpec): Promise<SmallRun> {
  const label = `${spec.side} ${spec.op.toUpperCase()} 64 KiB, ${spec.connections} connections`;
  progress(`${label}: ${ctx.opts.warmupS} s warm-up, ${ctx.opts.durationS} s measured…`);
  const run = await measureSmall(spec, ctx.opts.durationS, ctx.opts.warmupS);
  const lat = run.latencyMs;
  progress(`${label}: ${run.rps.toFixed(0)} req/s, p50 ${ms(lat.p50)} ms, p99 ${ms(lat.p99)} ms`);
  ctx.failures.push(...smallFailures(run, label));
  if (spec.op === 'get' && run.ok > 0 && run.bytesPerResponse < SMALL_BYTES) {
    ctx.failures.push(
      `${label}: responses averaged ${run.bytesPerResponse.toFixed(0)} bytes, less than the 64 KiB body`,
    );
  }
  if (run.ok === 0) ctx.failures.push(`${label}: not one request succeeded`);
  return run;
}

/**
 * Uploads the download set to Trove (unlimited downloads) and writes the same
 * bytes under nginx's root, then spot-checks that both serve them intact.
 * Returns the Trove ids, in the order of the nginx files.
 */
async function prepareDownloads(ctx: BenchContext): Promise<string[]> {
  const n = ctx.opts.downloadSet;
  progress(`uploading ${n} files of 64 KiB for the download runs…`);
  const dir = join(ctx.www, 'small');
  await mkdir(dir, { recursive: true });
  const ids: string[] = new Array<string>(n);
  const hashes: string[] = new Array<string>(n);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const body = jpegBody(SMALL_BYTES);
      hashes[i] = sha256(body);
      await writeFile(join(dir, `${i}.jpg`), body);
      ids[i] = await uploadOne(ctx, `bench-download-${i}.jpg`, body, hashes[i]!);
    }
  };
  try {
    await Promise.all(Array.from({ length: UPLOAD_CONCURRENCY }, worker));
  } catch (err) {
    ctx.failures.push(`preparing the download set: ${(err as Error).message}`);
    return [];
  }

  for (let k = 0; k < SPOT_CHECKS; k++) {
    const i = Math.floor((k * n) / SPOT_CHECKS);
    const urls = [`${ctx.trove.origin}${ctx.trove.prefix}/download/${ids[i]}`];
    if (ctx.nginx) urls.push(`${ctx.nginx.url}/small/${i}.jpg`);
    for (const url of urls) {
      const got = await getFile(url, ctx.dispatcher).catch((err: Error) => {
        ctx.failures.push(`GET ${url}: ${err.message}`);
        return undefined;
      });
      if (got && (got.status !== 200 || got.sha256 !== hashes[i])) {
        ctx.failures.push(
          `GET ${url}: status ${got.status}, ${got.bytes} bytes, sha256 ${got.sha256} (expected ${hashes[i]})`,
        );
      }
    }
  }
  return ids;
}

/** PUTs one body (unlimited downloads unless told) and returns its id, once Trove's sha256 and size match. */
export async function uploadOne(
  ctx: BenchContext,
  name: string,
  body: Buffer,
  hash: string,
  maxDownloads = 0,
): Promise<string> {
  return (await uploadOneWithToken(ctx, name, body, hash, maxDownloads)).id;
}

/** uploadOne, keeping the delete token too (for a suite that deletes its files at its end). */
export async function uploadOneWithToken(
  ctx: BenchContext,
  name: string,
  body: Buffer,
  hash: string,
  maxDownloads = 0,
): Promise<{ id: string; token: string }> {
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/upload/${name}?max_downloads=${maxDownloads}`;
  const res = await request(url, {
    method: 'PUT',
    dispatcher: ctx.dispatcher,
    body,
    headers: { 'content-type': 'image/jpeg' },
  });
  const text = await res.body.text();
  const answer = safeJson(text) as
    { id?: string; sha256?: string; size?: number; delete_token?: string } | undefined;
  if (res.statusCode !== 201 || !answer?.id)
    throw new Error(`PUT ${url} → ${res.statusCode} ${text.slice(0, 200)}`);
  if (answer.sha256 !== hash || answer.size !== body.length) {
    throw new Error(
      `PUT ${url}: Trove stored sha256 ${answer.sha256} / ${answer.size} bytes, sent ${hash} / ${body.length}`,
    );
  }
  return { id: answer.id, token: answer.delete_token ?? '' };
}

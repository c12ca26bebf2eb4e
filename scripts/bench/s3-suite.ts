/**
 * The S3 API beside the native one (`--only s3`), on the same cluster in the
 * same run: 64 KiB PUT and GET requests/s at the same concurrency, and the
 * large file's (--large-mib) PUT and GET MB/s, through the S3 port
 * (PutObject, GetObject, SigV4-signed by s3-signer.ts) and through
 * PUT /upload and GET /download/:id (max_downloads=0: unlimited, nothing
 * counted; an owner's GetObject is not counted either). The ratio S3/native
 * is what the S3 layer costs: signature, routing, the MD5 of the ETag, the
 * object's row.
 *
 * Needs the S3 port (`--s3`, else http://127.0.0.1:$S3_PORT) and ADMIN_TOKEN
 * in the environment, as the cluster has them, to make an access key for the
 * run; the key, the bucket and every object and file are removed at the end.
 * Both sides use one client (undici, keep-alive, `connections` in flight),
 * take turns in each pair, and start once the worker is at rest.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { progress, safeJson, settle, type BenchContext } from './context.js';
import { deleteFiles, getFile, putFile, type Transfer, type Uploaded } from './large.js';
import { checkUpload, median, uploadUrl } from './large-suite.js';
import { jpegBody, writeLargeFile } from './payload.js';
import { addCpu, costPer, metered, type CpuCost } from './procfs.js';
import { signedHeaders, type S3Credentials } from './s3-signer.js';
import { fmt, verdictOf, type Row } from './table.js';
import { untilWorkerDone } from './worker-quiet.js';

const SMALL_BYTES = 64 * 1024;
/** Requests in flight in the 64 KiB runs, on each side. */
const CONNECTIONS = 16;
/** The goal: S3 at 0.8 of the native API or better, for each figure. */
const TARGET_RATIO = 0.8;

export type S3Side = 's3' | 'native';
export type S3Figure = 'smallPut' | 'smallGet' | 'largePut' | 'largeGet';

export interface S3Results {
  endpoint: string;
  connections: number;
  largeBytes: number;
  /** req/s (64 KiB: over all its slices) or MB/s (large: median of the rounds), per figure and side. */
  figures: Partial<Record<S3Figure, Partial<Record<S3Side, number>>>>;
  /** Server CPU per request (small) or per MB (large), ms. */
  cpu: Partial<Record<S3Figure, Partial<Record<S3Side, CpuCost>>>>;
  /** req/s of every slice (64 KiB) or MB/s of every round (large). */
  rounds: Partial<Record<S3Figure, Record<S3Side, number[]>>>;
}

/** What the suite made on the cluster, to remove at the end. */
interface Made {
  creds?: S3Credentials & { id: string };
  bucket: string;
  keys: string[];
  files: Uploaded[];
}

export async function runS3Suite(ctx: BenchContext): Promise<S3Results | undefined> {
  const endpoint = s3Endpoint(ctx);
  const adminToken = process.env.ADMIN_TOKEN;
  if (!endpoint || !adminToken) {
    ctx.failures.push(
      's3: the S3 port is unknown or ADMIN_TOKEN is unset: run the cluster and the bench with S3_PORT and ADMIN_TOKEN (or --s3 <url>)',
    );
    return undefined;
  }
  const results: S3Results = {
    endpoint,
    connections: CONNECTIONS,
    largeBytes: ctx.opts.largeBytes,
    figures: {},
    cpu: {},
    rounds: {},
  };
  const made: Made = { bucket: `bench-s3-${Date.now().toString(36)}`, keys: [], files: [] };
  const agent = new Agent({ connections: CONNECTIONS, keepAliveTimeout: 10_000 });
  try {
    made.creds = await makeKey(ctx, endpoint, adminToken);
    await s3Call(made.creds, agent, 'PUT', `/${made.bucket}`, 200);
    await smallRuns(ctx, made, agent, results);
    await largeRuns(ctx, made, agent, results);
  } catch (err) {
    ctx.failures.push(`s3: ${(err as Error).message}`);
  } finally {
    ctx.sampler.setPhase('s3, cleaning up');
    await cleanUp(ctx, made, agent, adminToken);
    await agent.close();
  }
  return results;
}

/** --s3, else the S3_PORT the cluster was started with, on the gateway's host. */
function s3Endpoint(ctx: BenchContext): string | undefined {
  if (ctx.opts.s3) return ctx.opts.s3;
  const port = process.env.S3_PORT;
  if (!port) return undefined;
  const url = new URL(ctx.trove.origin);
  url.port = port;
  return url.origin;
}

async function makeKey(ctx: BenchContext, endpoint: string, adminToken: string) {
  const res = await request(`${ctx.trove.origin}${ctx.trove.prefix}/admin/s3/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench' }),
    dispatcher: ctx.dispatcher,
  });
  const text = await res.body.text();
  const key = safeJson(text) as { access_key_id?: string; secret_access_key?: string };
  if (res.statusCode !== 201 || !key?.access_key_id || !key.secret_access_key)
    throw new Error(`POST /admin/s3/keys → ${res.statusCode} ${text.slice(0, 200)}`);
  return {
    id: key.access_key_id,
    endpoint,
    region: process.env.S3_REGION ?? 'us-east-1',
    accessKeyId: key.access_key_id,
    secretAccessKey: key.secret_access_key,
  };
}

/** A signed request without a body; throws unless it answers `expect`. */
async function s3Call(
  creds: S3Credentials,
  dispatcher: Dispatcher,
  method: string,
  path: string,
  expect: number,
): Promise<void> {
  const res = await request(`${creds.endpoint}${path}`, {
    method: method as 'GET',
    headers: signedHeaders(creds, method, path),
    dispatcher,
  });
  const text = await res.body.text();
  if (res.statusCode !== expect)
    throw new Error(`${method} ${path} → ${res.statusCode} ${text.slice(0, 300)}`);
}

/** S3 keys are plain here (bench-…), so the path needs no encoding. */
const objectPath = (bucket: string, key: string) => `/${bucket}/${key}`;

interface Load {
  ok: number;
  failed: number;
  seconds: number;
  firstError?: string;
}

/**
 * `CONNECTIONS` loops calling `one` for `seconds`: the requests that
 * answered as expected in that time. A failure is counted, its first
 * message kept, and the loop goes on.
 */
async function load(seconds: number, one: () => Promise<void>): Promise<Load> {
  const result: Load = { ok: 0, failed: 0, seconds };
  const end = performance.now() + seconds * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      try {
        await one();
        result.ok++;
      } catch (err) {
        result.failed++;
        result.firstError ??= (err as Error).message;
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, loop));
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

async function smallRuns(ctx: BenchContext, made: Made, agent: Agent, results: S3Results) {
  const creds = made.creds!;
  const body = jpegBody(SMALL_BYTES);
  const native = `${ctx.trove.origin}${ctx.trove.prefix}`;
  let seq = 0;
  const puts: Record<S3Side, () => Promise<void>> = {
    s3: async () => {
      const key = `bench-${seq++}.jpg`;
      const path = objectPath(made.bucket, key);
      const res = await request(`${creds.endpoint}${path}`, {
        method: 'PUT',
        body,
        headers: {
          ...signedHeaders(creds, 'PUT', path, { 'x-amz-meta-max-downloads': '0' }),
          'content-length': String(body.length),
          'content-type': 'image/jpeg',
        },
        dispatcher: agent,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`PutObject → ${res.statusCode} ${text}`);
      made.keys.push(key);
    },
    native: async () => {
      const res = await request(`${native}/upload/bench-s3-native-${seq++}.jpg?max_downloads=0`, {
        method: 'PUT',
        body,
        headers: { 'content-type': 'image/jpeg', 'content-length': String(body.length) },
        dispatcher: agent,
      });
      const text = await res.body.text();
      const file = safeJson(text) as { id?: string; delete_token?: string } | undefined;
      if (res.statusCode !== 201 || !file?.id || !file.delete_token)
        throw new Error(`PUT /upload → ${res.statusCode} ${text.slice(0, 200)}`);
      made.files.push({ id: file.id, token: file.delete_token });
    },
  };
  await interleaved(ctx, results, 'smallPut', puts);

  // Reads of what the PUTs stored, the first 200 of each side, round robin.
  const keys = made.keys.slice(0, 200);
  const ids = made.files.slice(0, 200).map((f) => f.id);
  let i = 0;
  const expectBody = async (res: Dispatcher.ResponseData, what: string) => {
    const bytes = (await res.body.arrayBuffer()).byteLength;
    if (res.statusCode !== 200 || bytes !== SMALL_BYTES)
      throw new Error(`${what} → ${res.statusCode}, ${bytes} bytes`);
  };
  const gets: Record<S3Side, () => Promise<void>> = {
    s3: async () => {
      const path = objectPath(made.bucket, keys[i++ % keys.length]!);
      const res = await request(`${creds.endpoint}${path}`, {
        headers: signedHeaders(creds, 'GET', path),
        dispatcher: agent,
      });
      await expectBody(res, `GetObject ${path}`);
    },
    native: async () => {
      const id = ids[i++ % ids.length];
      const res = await request(`${native}/download/${id}`, { dispatcher: agent });
      await expectBody(res, `GET /download/${id}`);
    },
  };
  if (keys.length === 0 || ids.length === 0) return;
  await interleaved(ctx, results, 'smallGet', gets);
}

/** How long each side runs at a time in an interleaved figure. */
export const SLICE_S = 1;

/**
 * A 64 KiB figure measured in slices of SLICE_S seconds that alternate
 * between the sides (s3, native, native, s3, …) for as long as
 * `smallRounds` runs of `--duration` would take each side, once the worker
 * is at rest. The machine is shared, and its load moves over seconds: in
 * runs of 10 s one side would meet a busy spell the other missed (one
 * side's runs spread by 10-30 %, and a 64 KiB PUT's server CPU by 2×:
 * docs/benchmarks.md, "S3 API"), in slices of 1 s both sides meet it alike.
 * So does the worker's work after PUTs (a thumbnail and a compressed copy
 * each): what one side's slice leaves is made during the slices after it,
 * of either side alike. Each side's req/s and CPU per request are its sums
 * over its slices.
 */
async function interleaved(
  ctx: BenchContext,
  results: S3Results,
  figure: S3Figure,
  one: Record<S3Side, () => Promise<void>>,
) {
  const label = (side: S3Side) => `${side} ${LABELS[figure][0]}, ${CONNECTIONS} connections`;
  await untilWorkerDone(ctx, undefined, 's3');
  await settle();
  for (const side of SIDES) {
    progress(`${label(side)}: ${ctx.opts.warmupS} s warm-up`);
    await load(ctx.opts.warmupS, one[side]);
  }
  const slices = Math.max(1, Math.round((ctx.opts.smallRounds * ctx.opts.durationS) / SLICE_S));
  progress(
    `s3 vs native, ${LABELS[figure][0]}: ${slices} slices of ${SLICE_S} s each, alternating`,
  );
  const runs = await alternating(slices, async (side) => {
    const { result: run, cpu } = await metered(ctx.trove.processes, () => load(SLICE_S, one[side]));
    if (run.failed > 0)
      ctx.failures.push(
        `${label(side)}: ${run.failed} requests failed, the first: ${run.firstError}`,
      );
    return { ...run, cpu };
  });
  for (const side of SIDES) {
    const ok = runs[side].reduce((n, run) => n + run.ok, 0);
    const seconds = runs[side].reduce((n, run) => n + run.seconds, 0);
    if (ok === 0) continue;
    const cost = costPer(runs[side].map((run) => run.cpu).reduce(addCpu), ok);
    const rps = runs[side].map((run) => run.ok / run.seconds);
    progress(
      `${label(side)}: ${(ok / seconds).toFixed(0)} req/s over ${seconds.toFixed(1)} s, server CPU ${cost.server.toFixed(2)} ms/request`,
    );
    (results.figures[figure] ??= {})[side] = ok / seconds;
    (results.cpu[figure] ??= {})[side] = cost;
    (results.rounds[figure] ??= { s3: [], native: [] })[side] = rps;
  }
  const { s3, native } = results.cpu[figure] ?? {};
  if (s3 && native)
    ctx.notes.push(
      `s3: ${LABELS[figure][0]}, server CPU per request (the client's excluded): S3 ${s3.server.toFixed(3)} ms, native ${native.server.toFixed(3)} ms (native / S3 ${(native.server / s3.server).toFixed(2)})`,
    );
}

const SIDES: readonly S3Side[] = ['s3', 'native'];

/**
 * `slice(side)` `count` times for each side, in the order s3, native,
 * native, s3, s3, native, …: each side runs first in half the pairs, so a
 * trend over the run (the machine's load rising or falling) weighs on both
 * alike. Each side's results, in the order they ran.
 */
export async function alternating<T>(
  count: number,
  slice: (side: S3Side) => Promise<T>,
): Promise<Record<S3Side, T[]>> {
  const results: Record<S3Side, T[]> = { s3: [], native: [] };
  for (let k = 0; k < count; k++)
    for (const side of k % 2 ? [...SIDES].reverse() : SIDES) results[side].push(await slice(side));
  return results;
}

/** The large file PUT and GET through each side, `largeRounds` times, alternating which goes first. */
async function largeRuns(ctx: BenchContext, made: Made, agent: Agent, results: S3Results) {
  const creds = made.creds!;
  const bytes = ctx.opts.largeBytes;
  const source = join(ctx.www, 's3-large.jpg');
  progress(`writing a ${bytes / 2 ** 20} MiB test file…`);
  const sha256 = await writeLargeFile(source, bytes);
  const rounds: Record<'largePut' | 'largeGet', Record<S3Side, number[]>> = {
    largePut: { s3: [], native: [] },
    largeGet: { s3: [], native: [] },
  };
  const cpus: Record<'largePut' | 'largeGet', Record<S3Side, CpuCost[]>> = {
    largePut: { s3: [], native: [] },
    largeGet: { s3: [], native: [] },
  };
  const record = (figure: 'largePut' | 'largeGet', side: S3Side, t: Transfer, cpu: CpuCost) => {
    const mbps = bytes / t.seconds / 1e6;
    rounds[figure][side].push(mbps);
    cpus[figure][side].push(cpu);
    progress(`  ${side} ${figure === 'largePut' ? 'PUT' : 'GET'}: ${mbps.toFixed(0)} MB/s`);
  };
  try {
    for (let round = 1; round <= ctx.opts.largeRounds; round++) {
      progress(`s3 vs native, ${bytes / 2 ** 20} MiB, round ${round} of ${ctx.opts.largeRounds}`);
      const sides: S3Side[] = round % 2 ? ['s3', 'native'] : ['native', 's3'];
      for (const side of sides) {
        const key = `bench-large-${round}.jpg`;
        const path = objectPath(made.bucket, key);
        const url = side === 's3' ? `${creds.endpoint}${path}` : uploadUrl(ctx, key);
        await untilWorkerDone(ctx, made.files.at(-1)?.id, 's3');
        await settle();
        const put = await metered(ctx.trove.processes, () =>
          putFile(
            url,
            source,
            bytes,
            agent,
            side === 's3'
              ? signedHeaders(creds, 'PUT', path, { 'x-amz-meta-max-downloads': '0' })
              : {},
          ),
        );
        let getUrl: string;
        if (side === 's3') {
          if (put.result.status !== 200) {
            ctx.failures.push(`PutObject ${path} → ${put.result.status} ${put.result.answer}`);
            continue;
          }
          made.keys.push(key);
          getUrl = url;
        } else {
          const uploaded = checkUpload(ctx, url, put.result, bytes, sha256);
          if (!uploaded) continue;
          made.files.push(uploaded);
          getUrl = `${ctx.trove.origin}${ctx.trove.prefix}/download/${uploaded.id}`;
        }
        record('largePut', side, put.result, costPer(put.cpu, bytes / 1e6));
        await settle();
        const get = await metered(ctx.trove.processes, () =>
          getFile(getUrl, agent, side === 's3' ? signedHeaders(creds, 'GET', path) : {}),
        );
        const got = get.result;
        if (got.status !== 200 || got.bytes !== bytes || got.sha256 !== sha256) {
          ctx.failures.push(
            `${side} GET ${getUrl} → ${got.status}, ${got.bytes} bytes, sha256 ${got.sha256}`,
          );
          continue;
        }
        record('largeGet', side, got, costPer(get.cpu, bytes / 1e6));
      }
    }
  } finally {
    await rm(source, { force: true });
  }
  Object.assign(results.rounds, rounds);
  for (const figure of ['largePut', 'largeGet'] as const)
    for (const side of ['s3', 'native'] as const) {
      if (rounds[figure][side].length === 0) continue;
      (results.figures[figure] ??= {})[side] = median(rounds[figure][side]);
      const sorted = [...cpus[figure][side]].sort((a, b) => a.server - b.server);
      (results.cpu[figure] ??= {})[side] = sorted[(sorted.length - 1) >> 1];
    }
}

/** Every object, the bucket and the key; the native files with their delete tokens. */
async function cleanUp(ctx: BenchContext, made: Made, agent: Agent, adminToken: string) {
  const creds = made.creds;
  if (!creds) return;
  progress(`s3: deleting ${made.keys.length} objects and ${made.files.length} files…`);
  let next = 0;
  const worker = async () => {
    for (let k = next++; k < made.keys.length; k = next++) {
      const path = objectPath(made.bucket, made.keys[k]!);
      await s3Call(creds, agent, 'DELETE', path, 204).catch((err: Error) =>
        ctx.notes.push(`s3: ${err.message}`),
      );
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  await s3Call(creds, agent, 'DELETE', `/${made.bucket}`, 204).catch((err: Error) =>
    ctx.notes.push(`s3: ${err.message}`),
  );
  ctx.notes.push(
    ...(await deleteFiles(`${ctx.trove.origin}${ctx.trove.prefix}`, made.files, agent)),
  );
  const res = await request(`${ctx.trove.origin}${ctx.trove.prefix}/admin/s3/keys/${creds.id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${adminToken}` },
    dispatcher: ctx.dispatcher,
  });
  await res.body.dump();
}

const LABELS: Record<S3Figure, [string, string]> = {
  smallPut: ['64 KiB PUT', 'req/s'],
  smallGet: ['64 KiB GET', 'req/s'],
  largePut: ['PUT', 'MB/s'],
  largeGet: ['GET', 'MB/s'],
};

/** Report rows: each figure through S3 beside the native API's (ratio = S3 / native, goal ≥ 0.8). */
export function s3Rows(r: S3Results): Row[] {
  const size = `${r.largeBytes / 2 ** 20} MiB`;
  return (Object.keys(LABELS) as S3Figure[]).map((figure) => {
    const [what, unit] = LABELS[figure];
    const { s3, native } = r.figures[figure] ?? {};
    const cell = (v: number | undefined) => (v === undefined ? 'no result' : `${fmt(v)} ${unit}`);
    const ratio = s3 !== undefined && native ? s3 / native : undefined;
    const label = figure.startsWith('small')
      ? `S3 ${what}, ${r.connections} connections`
      : `S3 ${size} ${what}`;
    return {
      figure: label,
      trove: cell(s3),
      reference: `native ${cell(native)}`,
      ratio,
      target: `≥ ${TARGET_RATIO}`,
      verdict: verdictOf(ratio, TARGET_RATIO),
      swift: '—',
    };
  });
}

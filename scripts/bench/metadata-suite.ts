/**
 * Metadata in SQLite vs PostgreSQL (`--only metadata`, and part of the
 * default run when PostgreSQL answers at --postgres): the same figures on two
 * gateways the bench starts beside the cluster's (metadata-gateways.ts), one
 * on SQLite and one on PostgreSQL, same nodes, same Redis, same machine:
 *
 * - 64 KiB PUT at 16 connections (beginUpload, then commitUploads);
 * - counted 64 KiB GET over 20 files at 16 connections (a lock and a
 *   grantDownloads per request, or per few);
 * - the hot counted file: one file at 64 connections, settled in batches.
 *
 * Each figure runs S P P S, each segment half of --duration after a 1 s
 * warm-up, so drift on a noisy machine weighs on both sides alike. The ratio
 * is PostgreSQL / SQLite; issue 16 asks for at least 0.8.
 */
import { loadCommonConfig } from '../../shared/config.js';
import { progress, safeJson, settle, type BenchContext } from './context.js';
import { COUNTED_MAX_DOWNLOADS } from './counter-suite.js';
import { getFile } from './large.js';
import {
  startBenchGateways,
  type BenchGateway,
  type BenchGateways,
  type MetadataMode,
} from './metadata-gateways.js';
import { jpegBody, sha256 } from './payload.js';
import { isAlive, type Watched } from './procfs.js';
import { SMALL_BYTES, uploadOne } from './small-suite.js';
import { measureSmall, smallFailures, type SmallRun } from './small.js';
import { fmt, verdictOf, type Row } from './table.js';
import { request } from 'undici';

/** Issue 16: PostgreSQL mode at this fraction of SQLite mode, or better. */
export const METADATA_MIN_RATIO = 0.8;
const COUNTED_FILES = 20;

export type MetadataFigure = 'put' | 'counted' | 'hot';

const FIGURES: Record<MetadataFigure, { label: string; connections: number }> = {
  put: { label: '64 KiB PUT', connections: 16 },
  counted: { label: `counted 64 KiB GET over ${COUNTED_FILES} files`, connections: 16 },
  hot: { label: 'hot counted file, 64 KiB GET', connections: 64 },
};

export interface MetadataPair {
  figure: MetadataFigure;
  connections: number;
  sqlite: SmallRun;
  postgres: SmallRun;
  /** postgres.rps / sqlite.rps */
  ratio: number;
}

export interface MetadataResults {
  postgresUrl: string;
  poolSize: number;
  pairs: MetadataPair[];
}

interface Files {
  counted: string[];
  hot: string;
}

export async function runMetadataSuite(ctx: BenchContext): Promise<MetadataResults | undefined> {
  const { postgresUrl } = ctx.opts;
  const poolSize = loadCommonConfig(process.env).databasePoolSize;
  let gateways: BenchGateways;
  try {
    progress(
      `metadata: starting a SQLite gateway and a PostgreSQL one (${redacted(postgresUrl)})…`,
    );
    gateways = await startBenchGateways(postgresUrl, ctx.scratch);
  } catch (err) {
    ctx.notes.push(
      `metadata (SQLite vs PostgreSQL) skipped: ${(err as Error).message} (--postgres ${redacted(postgresUrl)})`,
    );
    return undefined;
  }
  try {
    const files = {} as Record<MetadataMode, Files>;
    for (const mode of ['sqlite', 'postgres'] as const) {
      const prepared = await prepareFiles(ctx, gateways[mode]);
      if (!prepared) return undefined;
      files[mode] = prepared;
    }
    const pairs: MetadataPair[] = [];
    for (const figure of ['put', 'counted', 'hot'] as const) {
      pairs.push(await measurePair(ctx, gateways, figure, files));
    }
    return { postgresUrl: redacted(postgresUrl), poolSize, pairs };
  } finally {
    await gateways.stop();
  }
}

function redacted(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/** The gateway's context: the same client and checks, another origin. */
function on(ctx: BenchContext, gw: BenchGateway): BenchContext {
  return { ...ctx, trove: { ...ctx.trove, origin: gw.origin, prefix: '' } };
}

/** Counted files on one gateway, one of them downloaded once to check its bytes and its count. */
async function prepareFiles(ctx: BenchContext, gw: BenchGateway): Promise<Files | undefined> {
  progress(`metadata: uploading ${COUNTED_FILES + 1} counted files of 64 KiB to ${gw.mode}…`);
  const at = on(ctx, gw);
  try {
    const ids: string[] = [];
    let probe: { id: string; hash: string } | undefined;
    for (let i = 0; i <= COUNTED_FILES; i++) {
      const body = jpegBody(SMALL_BYTES);
      const hash = sha256(body);
      const id = await uploadOne(
        at,
        `bench-meta-${gw.mode}-${i}.jpg`,
        body,
        hash,
        COUNTED_MAX_DOWNLOADS,
      );
      ids.push(id);
      probe ??= { id, hash };
    }
    const got = await getFile(`${gw.origin}/download/${probe!.id}`, ctx.dispatcher);
    const used = await downloadsUsed(gw, probe!.id, ctx);
    if (got.status !== 200 || got.sha256 !== probe!.hash || used !== 1) {
      throw new Error(`one GET of ${probe!.id}: status ${got.status}, downloads_used ${used}`);
    }
    return { hot: ids[0]!, counted: ids.slice(1) };
  } catch (err) {
    ctx.failures.push(`metadata: preparing the ${gw.mode} files: ${(err as Error).message}`);
    return undefined;
  }
}

async function downloadsUsed(gw: BenchGateway, id: string, ctx: BenchContext): Promise<unknown> {
  const res = await request(`${gw.origin}/files/${id}`, { dispatcher: ctx.dispatcher });
  return (safeJson(await res.body.text()) as { downloads_used?: unknown } | undefined)
    ?.downloads_used;
}

/** The processes a side's requests cost: its gateway, the nodes, and its own PostgreSQL backends. */
function servers(ctx: BenchContext, gw: BenchGateway): () => Watched[] {
  const nodes = ctx.trove.processes().filter((p) => p.name.startsWith('node'));
  return () => [
    { name: 'gateway', pid: gw.pid },
    ...nodes,
    ...gw.backends.filter(isAlive).map((pid) => ({ name: 'postgres', pid })),
  ];
}

async function measurePair(
  ctx: BenchContext,
  gateways: BenchGateways,
  figure: MetadataFigure,
  files: Record<MetadataMode, Files>,
): Promise<MetadataPair> {
  const { label, connections } = FIGURES[figure];
  const half = Math.max(1, Math.round(ctx.opts.durationS / 2));
  progress(`metadata: ${label}, ${connections} connections, S P P S × ${half} s…`);
  const tag = Date.now().toString(36);
  let seq = 0;
  const segment = async (mode: MetadataMode): Promise<SmallRun> => {
    const gw = gateways[mode];
    const ids = figure === 'hot' ? [files[mode].hot] : files[mode].counted;
    let i = 0;
    await settle();
    await gateways.refresh();
    const run = await measureSmall(
      {
        side: 'trove',
        op: figure === 'put' ? 'put' : 'get',
        origin: gw.origin,
        connections,
        ...(figure === 'put' ? { body: jpegBody(SMALL_BYTES) } : {}),
        nextPath:
          figure === 'put'
            ? () => `/upload/bench-meta-${mode}-${tag}-${seq++}.jpg?max_downloads=0`
            : () => `/download/${ids[i++ % ids.length]}`,
        servers: servers(ctx, gw),
      },
      half,
      1,
    );
    const what = `metadata ${mode} ${label}, ${connections} connections`;
    progress(
      `${what}: ${run.rps.toFixed(0)} req/s, p50 ${run.latencyMs.p50} ms, p99 ${run.latencyMs.p99} ms`,
    );
    ctx.failures.push(...smallFailures(run, what));
    if (run.ok === 0) ctx.failures.push(`${what}: not one request succeeded`);
    return run;
  };
  const s1 = await segment('sqlite');
  const p1 = await segment('postgres');
  const p2 = await segment('postgres');
  const s2 = await segment('sqlite');
  const sqlite = combine(s1, s2);
  const postgres = combine(p1, p2);
  const ratio = sqlite.rps > 0 ? postgres.rps / sqlite.rps : 0;
  progress(`metadata: ${label}: PostgreSQL/SQLite ${ratio.toFixed(2)}`);
  return { figure, connections, sqlite, postgres, ratio };
}

/**
 * Two segments of one side as one run: counts, seconds and CPU summed;
 * latencies are the mean of the two segments' (weighted by requests), an
 * approximation, as autocannon keeps no mergeable histogram here.
 */
function combine(a: SmallRun, b: SmallRun): SmallRun {
  const ok = a.ok + b.ok;
  const w = (x: number, y: number) => (ok > 0 ? (x * a.ok + y * b.ok) / ok : 0);
  const statusCodes = { ...a.statusCodes };
  for (const [code, n] of Object.entries(b.statusCodes))
    statusCodes[code] = (statusCodes[code] ?? 0) + n;
  const byProcess: Record<string, number> = {};
  for (const name of new Set([
    ...Object.keys(a.cpuMsPerRequest.byProcess),
    ...Object.keys(b.cpuMsPerRequest.byProcess),
  ])) {
    byProcess[name] = w(
      a.cpuMsPerRequest.byProcess[name] ?? 0,
      b.cpuMsPerRequest.byProcess[name] ?? 0,
    );
  }
  const seconds = a.seconds + b.seconds;
  return {
    ...a,
    ok,
    non2xx: a.non2xx + b.non2xx,
    errors: a.errors + b.errors,
    timeouts: a.timeouts + b.timeouts,
    statusCodes,
    seconds,
    rps: seconds > 0 ? ok / seconds : 0,
    latencyMs: {
      mean: w(a.latencyMs.mean, b.latencyMs.mean),
      p50: w(a.latencyMs.p50, b.latencyMs.p50),
      p90: w(a.latencyMs.p90, b.latencyMs.p90),
      p99: w(a.latencyMs.p99, b.latencyMs.p99),
      max: Math.max(a.latencyMs.max, b.latencyMs.max),
    },
    bytesPerResponse: w(a.bytesPerResponse, b.bytesPerResponse),
    cpuMsPerRequest: {
      server: w(a.cpuMsPerRequest.server, b.cpuMsPerRequest.server),
      client: w(a.cpuMsPerRequest.client, b.cpuMsPerRequest.client),
      byProcess,
    },
  };
}

function cell(r: SmallRun): string {
  const cpu = Object.entries(r.cpuMsPerRequest.byProcess)
    .filter(([, v]) => v >= 0.005)
    .map(([n, v]) => `${n} ${fmt(v)}`)
    .join(', ');
  return `${fmt(r.rps)} req/s (p50 ${fmt(r.latencyMs.p50)}, p99 ${fmt(r.latencyMs.p99)} ms; CPU ms/req ${cpu})`;
}

export function metadataRows(r: MetadataResults): Row[] {
  return r.pairs.map((p) => ({
    figure: `${FIGURES[p.figure].label}, ${p.connections} connections, PostgreSQL (pool ${r.poolSize})`,
    trove: cell(p.postgres),
    reference: `SQLite ${cell(p.sqlite)}`,
    ratio: p.ratio,
    target: `≥ ${METADATA_MIN_RATIO}`,
    verdict: verdictOf(p.ratio, METADATA_MIN_RATIO),
    swift: '—',
  }));
}

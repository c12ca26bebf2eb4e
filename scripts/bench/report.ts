/**
 * The bench's answer: one row per figure (Trove beside its reference, the
 * ratio, the target), a few lines on where CPU went, and the raw results as
 * JSON under bench-results/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, relative } from 'node:path';
import { SERVICES } from './cluster.js';
import type { CounterResults, CounterRun } from './counter-suite.js';
import { metadataRows, type MetadataResults } from './metadata-suite.js';
import { memoryCell, worstOf, type MemoryAround } from './memory.js';
import type { MemoryResults } from './memory-suite.js';
import type { BenchOptions } from './options.js';
import type { LargeKind, LargeResults } from './large-suite.js';
import { lbRows, type LbResults } from './lb-suite.js';
import { processRows, type ProcessResults } from './process-suite.js';
import { rebalanceRows } from './rebalance-rows.js';
import type { RebalanceResults } from './rebalance-suite.js';
import type { RepairRate, RepairResults } from './repair-suite.js';
import { resumableRows, type ResumableResults } from './resumable-suite.js';
import { s3Rows, SLICE_S, type S3Results } from './s3-suite.js';
import { thumbnailRows, type ThumbnailResults } from './thumbnail-suite.js';
import type { SmallRun } from './small.js';
import type { SmallResults } from './small-suite.js';
import type { SyncLimit } from './sync-limit.js';
import type { CpuCost } from './procfs.js';
import {
  byProcessCell,
  contextRow,
  fmt,
  ms,
  renderTable,
  verdictIf,
  verdictOf,
  type Row,
} from './table.js';

/** OpenStack Swift 2.30, 3 replicas, from /work/shared/BENCHMARKS.md: a context column, never a ratio. */
const SWIFT = {
  smallPut: '110 req/s',
  smallGet: '550 req/s',
  largePut: '150 MB/s',
  largeGet: '478 MB/s',
};
export const RSS_LIMIT_MB = 150;

/** The targets of issue 15 ("The data path at the speed of the machine") the rows check. */
const TARGETS = {
  /** 64 KiB GET at 64 connections, × nginx. */
  smallGetRatio: 0.25,
  /** 64 KiB PUT at 16 connections, × the three-copy sync limit. */
  smallPutSyncRatio: 0.5,
  /** CPU per 64 KiB PUT at 16 connections, all processes, ms. */
  smallPutCpuMs: 2,
  /** CPU per 64 KiB GET at 64 connections, all processes, ms. */
  smallGetCpuMs: 0.3,
  /** p99 of a 64 KiB GET at 16 connections, under this many ms. */
  smallGetP99Ms: 20,
  /** 256 MiB PUT, × three-fsynced-files. */
  largePutRatio: 0.6,
  /** 256 MiB GET, × nginx. */
  largeGetRatio: 0.5,
};

function smallCell(r: SmallRun): string {
  return `${fmt(r.rps)} req/s (p50 ${ms(r.latencyMs.p50)}, p99 ${ms(r.latencyMs.p99)} ms)`;
}

export interface RowInput {
  small: SmallResults;
  counter: CounterResults | undefined;
  metadata: MetadataResults | undefined;
  large: LargeResults | undefined;
  resumable: ResumableResults | undefined;
  repair: RepairResults | undefined;
  rebalance: RebalanceResults | undefined;
  processing: ProcessResults | undefined;
  thumbnails: ThumbnailResults | undefined;
  lb: LbResults | undefined;
  memory: MemoryResults | undefined;
  s3: S3Results | undefined;
  /** Names of the processes watched (those with a live pid file). */
  watched: string[];
  /** Why nginx figures are missing, when they are. */
  nginxMissing: string | undefined;
}

export function buildRows(input: RowInput): Row[] {
  const rows: Row[] = [];
  const missingRef = input.nginxMissing ? 'skipped (see notes)' : 'no result';
  const smallRuns = input.small.runs;
  const small = (op: 'put' | 'get', c: number, side: 'trove' | 'nginx') =>
    smallRuns.find((r) => r.op === op && r.connections === c && r.side === side);
  const concurrencies = [...new Set(smallRuns.map((r) => r.connections))];

  for (const op of ['put', 'get'] as const) {
    for (const c of concurrencies) {
      const trove = small(op, c, 'trove');
      if (!trove) continue;
      const ref = small(op, c, 'nginx');
      const ratio = ref && ref.rps > 0 ? trove.rps / ref.rps : undefined;
      const min = op === 'put' ? 0.25 : c === 64 ? TARGETS.smallGetRatio : undefined;
      rows.push({
        figure: `64 KiB ${op.toUpperCase()}, ${c} connections`,
        trove: smallCell(trove),
        reference: ref
          ? `nginx ${op === 'put' ? 'dav ' : ''}${smallCell(ref)}`
          : `nginx ${missingRef}`,
        ratio,
        target: min === undefined ? '—' : `≥ ${min}`,
        verdict: verdictOf(ratio, min),
        swift: op === 'put' ? SWIFT.smallPut : SWIFT.smallGet,
      });
      if (op === 'put' && input.small.syncLimit)
        rows.push(syncLimitRow(trove, input.small.syncLimit));
      if (op === 'get' && c === 16) rows.push(p99Row(trove, ref, missingRef));
    }
  }
  for (const op of ['put', 'get'] as const) {
    for (const c of concurrencies) {
      const trove = small(op, c, 'trove');
      if (trove) rows.push(smallCpuRow(trove, small(op, c, 'nginx'), missingRef));
    }
  }

  if (input.counter) rows.push(...counterRows(input.counter));
  if (input.metadata) rows.push(...metadataRows(input.metadata));
  if (input.repair) rows.push(...repairRows(input.repair));
  if (input.rebalance) rows.push(...rebalanceRows(input.rebalance));
  if (input.processing) rows.push(...processRows(input.processing));
  if (input.lb) rows.push(...lbRows(input.lb));
  if (input.thumbnails) rows.push(...thumbnailRows(input.thumbnails));
  if (input.memory) rows.push(...memoryRows(input.memory, input.watched));
  if (input.s3) rows.push(...s3Rows(input.s3));

  const large = input.large;
  if (large) {
    const size = `${large.bytes / 2 ** 20} MiB`;
    const m = (k: LargeKind) => large.median[k];
    const cell = (v: number | undefined) => (v === undefined ? 'no result' : `${fmt(v)} MB/s`);
    const ratioOf = (a: number | undefined, b: number | undefined) =>
      a !== undefined && b ? a / b : undefined;
    const nginxCell = (v: number | undefined, what: string) =>
      input.nginxMissing ? `nginx ${missingRef}` : `nginx ${what}${cell(v)}`;
    const largeRow = (
      figure: string,
      t: number | undefined,
      refCell: string,
      ref: number | undefined,
      min?: number,
      aim?: number,
    ) => {
      const ratio = ratioOf(t, ref);
      rows.push({
        figure,
        trove: cell(t),
        reference: refCell,
        ratio,
        target: min === undefined ? '—' : `≥ ${min}${aim ? ` (aim ${aim})` : ''}`,
        verdict: verdictOf(ratio, min),
        swift: figure.includes('PUT') ? SWIFT.largePut : SWIFT.largeGet,
      });
    };
    largeRow(`${size} PUT`, m('trovePut'), nginxCell(m('nginxPut'), 'dav '), m('nginxPut'));
    largeRow(
      `${size} PUT`,
      m('trovePut'),
      `three-fsynced-files ${cell(m('threeFsyncedFiles'))}`,
      m('threeFsyncedFiles'),
      TARGETS.largePutRatio,
    );
    largeRow(
      `${size} GET`,
      m('troveGet'),
      nginxCell(m('nginxGet'), ''),
      m('nginxGet'),
      TARGETS.largeGetRatio,
      0.8,
    );
    if (m('troveGetCurl') !== undefined) {
      largeRow(
        `${size} GET, curl client`,
        m('troveGetCurl'),
        nginxCell(m('nginxGetCurl'), ''),
        m('nginxGetCurl'),
      );
    }

    for (const [op, trove, ref, what] of [
      ['PUT', 'trovePut', 'nginxPut', 'nginx dav'],
      ['GET', 'troveGet', 'nginxGet', 'nginx'],
    ] as const) {
      const t = large.cpuMedian[trove];
      const r = large.cpuMedian[ref];
      if (!t) continue;
      const perFile = (c: CpuCost) => `${fmt((c.server * large.bytes) / 1e6 / 1000)} s per file`;
      rows.push(
        contextRow(
          `CPU per MB, ${size} ${op}`,
          `${fmt(t.server)} ms/MB, ${perFile(t)} (${byProcessCell(t)})`,
          r
            ? `${what} ${fmt(r.server)} ms/MB, ${perFile(r)}`
            : `nginx ${input.nginxMissing ? missingRef : 'no result'}`,
          r && r.server > 0 ? t.server / r.server : undefined,
        ),
      );
    }

    rows.push(...rssRows(large.memory, `${size} transfers`, input.watched));
  }
  if (input.resumable) rows.push(...resumableRows(input.resumable));
  return rows;
}

/** The upload rate beside what three synced copies on this disk allow, one write at a time. */
function syncLimitRow(trove: SmallRun, limit: SyncLimit): Row {
  const ratio = limit.threeCopyPerS > 0 ? trove.rps / limit.threeCopyPerS : undefined;
  const min = trove.connections === 16 ? TARGETS.smallPutSyncRatio : undefined;
  return {
    figure: `64 KiB PUT, ${trove.connections} connections`,
    trove: `${fmt(trove.rps)} req/s`,
    reference:
      `three-copy sync limit ${fmt(limit.threeCopyPerS)}/s ` +
      `(${fmt(limit.dsyncWritesPerS)} O_DSYNC 64 KiB writes/s ÷ 3)`,
    ratio,
    target: min === undefined ? '—' : `≥ ${min}`,
    verdict: verdictOf(ratio, min),
    swift: '—',
  };
}

/** The tail latency of small downloads, against an absolute target. */
function p99Row(trove: SmallRun, ref: SmallRun | undefined, missingRef: string): Row {
  const p99 = trove.latencyMs.p99;
  const refP99 = ref?.latencyMs.p99;
  return {
    figure: `64 KiB GET p99, ${trove.connections} connections`,
    trove: `${ms(p99)} ms`,
    reference: ref ? `nginx ${ms(refP99!)} ms` : `nginx ${missingRef}`,
    ratio: refP99 ? p99 / refP99 : undefined,
    target: `< ${TARGETS.smallGetP99Ms} ms`,
    verdict: verdictIf(p99 < TARGETS.smallGetP99Ms),
    swift: '—',
  };
}

/**
 * CPU per request of every serving process together, each one beside it,
 * against nginx's (ratio = Trove / nginx: how many times nginx's CPU); the
 * targets are absolute (ms per request, all of Trove's processes).
 */
function smallCpuRow(trove: SmallRun, ref: SmallRun | undefined, missingRef: string): Row {
  const t = trove.cpuMsPerRequest;
  const r = ref?.cpuMsPerRequest;
  const max =
    trove.op === 'put' && trove.connections === 16
      ? TARGETS.smallPutCpuMs
      : trove.op === 'get' && trove.connections === 64
        ? TARGETS.smallGetCpuMs
        : undefined;
  return {
    figure: `CPU per 64 KiB ${trove.op.toUpperCase()}, ${trove.connections} connections`,
    trove: `${fmt(t.server)} ms (${byProcessCell(t)})`,
    reference: r ? `nginx ${fmt(r.server)} ms` : `nginx ${missingRef}`,
    ratio: r && r.server > 0 ? t.server / r.server : undefined,
    target: max === undefined ? '—' : `≤ ${max} ms`,
    verdict: max === undefined ? '—' : verdictIf(t.server <= max),
    swift: '—',
  };
}

/** One row per process: its peak and resting RSS around a suite, against RSS_LIMIT_MB. */
function rssRows(memory: MemoryAround, what: string, watched: string[]): Row[] {
  return SERVICES.map((name) => {
    const worst = worstOf(memory, name);
    return {
      figure: `RSS ${name}, ${what}`,
      trove: watched.includes(name) ? memoryCell(memory, name) : 'no pid file',
      reference: '—',
      ratio: undefined,
      target: `< ${RSS_LIMIT_MB} MB`,
      verdict: worst === undefined ? 'n/a' : worst / 1e6 < RSS_LIMIT_MB ? 'ok' : 'MISS',
      swift: '—',
    };
  });
}

/** What the mixed traffic did, then each process's RSS around it. */
function memoryRows(m: MemoryResults, watched: string[]): Row[] {
  const done = Object.entries(m.counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([what, n]) => `${n} × ${what}`)
    .join(', ');
  return [
    contextRow(`mixed traffic, ${m.seconds} s`, done || 'nothing completed', '—', undefined),
    ...rssRows(m.memory, `mixed traffic`, watched),
  ];
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** Counted GETs beside unlimited ones (max_downloads=0 skips the counter): ratio = counted / unlimited. */
function counterRows(counter: CounterResults): Row[] {
  const rows: Row[] = [];
  for (const { connections, unlimited, counted } of counter.latency) {
    for (const p of ['p50', 'p99'] as const) {
      const [c, u] = [counted.latencyMs[p], unlimited.latencyMs[p]];
      const added = c - u;
      rows.push(
        contextRow(
          `64 KiB GET ${p}, counted, ${plural(connections, 'connection')}`,
          `${fmt(c)} ms (${added < 0 ? '-' : '+'}${fmt(Math.abs(added))} ms)`,
          `unlimited ${fmt(u)} ms`,
          u > 0 ? c / u : undefined,
        ),
      );
    }
  }
  const hot = counter.hot;
  if (!hot) return rows;
  const cell = (r: CounterRun) =>
    `${fmt(r.rps)} downloads/s (p50 ${fmt(r.latencyMs.p50)}, p99 ${fmt(r.latencyMs.p99)} ms)`;
  rows.push(
    contextRow(
      `64 KiB GET of one counted file, ${hot.connections} connections`,
      cell(hot.counted),
      `one unlimited file ${cell(hot.unlimited)}`,
      hot.unlimited.rps > 0 ? hot.counted.rps / hot.unlimited.rps : undefined,
    ),
  );
  const n = hot.count;
  const rose = n && n.usedAfter - n.usedBefore;
  rows.push({
    ...contextRow(
      'that file: downloads_used vs 200s',
      n ? `downloads_used +${rose}` : 'not read',
      n ? `${n.ok200} × 200 received` : '—',
      undefined,
    ),
    target: 'equal',
    verdict: !n ? 'n/a' : rose === n.ok200 ? 'ok' : 'MISS',
  });
  return rows;
}

/**
 * Restoring a wiped node: how long, then the worker's rate beside a plain
 * GET → PUT of the same objects (ratio = repair / plain copy), and its MB/s
 * beside REPAIR_BYTES_PER_SECOND, the cap it is meant to stay under.
 */
function repairRows(r: RepairResults): Row[] {
  const what = `${r.objects.small} × 64 KiB + ${r.objects.large} × 50 MB`;
  const limit = r.limitBytesPerS === 0 ? 'unlimited' : `${fmt(r.limitBytesPerS / 1e6)} MB/s`;
  const at = (v: number | undefined) => (v === undefined ? '?' : `${fmt(v)} s`);
  const restore =
    r.restoreS === undefined
      ? 'not restored'
      : `${at(r.restoreS)} from restart (first copy ${at(r.firstCopyS)}, ` +
        `64 KiB all back ${at(r.smallBackS)}, 50 MB ${at(r.largeBackS)})`;
  const t = r.trove;
  const ref = r.reference;
  const plain = (cell: (x: RepairRate) => string) =>
    ref ? `plain GET→PUT ${cell(ref)}` : 'plain GET→PUT: no result';
  const objects = (x: RepairRate) => `${fmt(x.objectsPerS)} objects/s`;
  const mb = (x: RepairRate) => `${fmt(x.mbPerS)} MB/s`;
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b ? a / b : undefined;
  const rows = [
    contextRow(
      `restore of wiped ${r.node}, ${what}`,
      restore,
      ref
        ? `plain GET→PUT of the same objects ${at(ref.seconds)}, ${r.concurrency} at a time`
        : `${r.concurrency} repairs at a time`,
      undefined,
    ),
    contextRow(
      `repair of wiped ${r.node}, objects/s`,
      t ? `${objects(t)} (${t.objects} copies)` : 'no result',
      plain(objects),
      ratio(t?.objectsPerS, ref?.objectsPerS),
    ),
    contextRow(
      `repair of wiped ${r.node}, MB/s`,
      t ? `${mb(t)} (limit ${limit})` : 'no result',
      plain(mb),
      ratio(t?.mbPerS, ref?.mbPerS),
    ),
  ];
  if (r.limitBytesPerS > 0) {
    rows.push(
      contextRow(
        'repair MB/s vs its limit',
        t ? mb(t) : 'no result',
        `REPAIR_BYTES_PER_SECOND ${limit}`,
        ratio(t?.mbPerS, r.limitBytesPerS / 1e6),
      ),
    );
  }
  return rows;
}

/** Where CPU went in each small run: ms per request of each server process and of the load client. */
export function renderCpu(small: SmallRun[]): string {
  if (small.length === 0) return '';
  const lines = [
    'CPU per 64 KiB request, ms (server: every watched process, the worker too, or nginx master + workers; client: this process):',
  ];
  for (const r of small) {
    const what = `${r.side.padEnd(5)} ${r.op.toUpperCase()} c${r.connections}`;
    const c = r.cpuMsPerRequest;
    lines.push(
      `  ${what.padEnd(14)} server ${c.server.toFixed(2).padStart(6)}   client ${c.client.toFixed(2).padStart(5)}   ${byProcessCell(c)}`,
    );
  }
  return lines.join('\n');
}

/** Writes the raw results; returns the file's path. */
export async function writeResults(dir: string, startedAt: Date, data: unknown): Promise<string> {
  await mkdir(dir, { recursive: true });
  // ISO 8601 with ':' swapped for '-', which some file systems and tools refuse in names.
  const file = join(dir, `${startedAt.toISOString().replace(/:/g, '-')}.json`);
  await writeFile(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown CPU',
    memBytes: os.totalmem(),
    kernel: os.release(),
    node: process.version,
  };
}

export interface Report {
  opts: BenchOptions;
  startedAt: Date;
  rows: Row[];
  small: SmallRun[];
  notes: string[];
  failures: string[];
  /** Where the raw results went. */
  file: string;
}

/** Prints the report to stdout; failures last and loud, so they cannot be missed. */
export function printReport(r: Report): void {
  const m = machineInfo();
  const { opts } = r;
  const large =
    opts.runLarge || opts.runResumable
      ? `, ${opts.largeBytes / 2 ** 20} MiB large file (median of ${opts.largeRounds})`
      : '';
  const repair = opts.runRepair
    ? `, repair of a wiped ${opts.repairNode}`
    : opts.runRebalance
      ? ', rebalance onto a fourth node'
      : '';
  const s3 = opts.runS3
    ? `; S3's 64 KiB figures in ${SLICE_S} s slices alternating between the sides, ${opts.smallRounds * opts.durationS} s each`
    : '';
  const out: string[] = [
    '',
    `Trove bench, ${r.startedAt.toISOString()}: ${m.cpus} × ${m.cpuModel}, Linux ${m.kernel}, Node ${m.node}`,
    `${opts.durationS} s runs after ${opts.warmupS} s warm-up${large}${repair}${s3}; ratio = Trove / reference`,
    '',
    renderTable(r.rows),
  ];
  const cpu = renderCpu(r.small);
  if (cpu) out.push('', cpu);
  const notes = [
    ...r.notes,
    'Swift (context): OpenStack Swift on a similar machine, from BENCHMARKS.md; not measured here, no ratio',
  ];
  out.push('', 'notes:', ...notes.map((n) => `  - ${n}`));
  out.push('', `raw results: ${relative(process.cwd(), r.file)}`);
  out.push(
    `bench's own peak RSS: ${((process.resourceUsage().maxRSS * 1024) / 1e6).toFixed(0)} MB`,
  );

  if (r.failures.length > 0) {
    const bar = '!'.repeat(78);
    out.push(
      '',
      bar,
      `!! BENCH FAILED: ${r.failures.length} problem(s); the figures above are not trustworthy.`,
    );
    for (const f of r.failures.slice(0, 30)) out.push(`!!  - ${f}`);
    if (r.failures.length > 30) out.push(`!!  … and ${r.failures.length - 30} more in ${r.file}`);
    out.push(bar);
  } else {
    const missed = r.rows.filter((row) => row.verdict === 'MISS').length;
    const targets = missed === 0 ? 'every target met' : `${missed} target(s) missed (see ok?)`;
    out.push('', `no failed requests; ${targets}.`);
  }
  console.log(out.join('\n'));
}

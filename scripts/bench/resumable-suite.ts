/**
 * A tus upload against one request (`--only resumable`): the large file
 * (--large-mib, 256 MiB; 64 with --quick) sent to /tus/ by tus-js-client in
 * 8 MiB chunks, beside the same file streamed in one PUT /upload, in the same
 * rounds. Each upload is timed from its first byte to the file committed:
 * the PUT's 201; tus's onSuccess, the last PATCH answered, which the gateway
 * sends only once every node has committed its staged file and the file is
 * committed. The ratio tus / one PUT is what sending the file as parts (a
 * request and a write quorum's fsync each) and committing them at the end
 * cost.
 *
 * The two alternate which goes first from round to round, so drift weighs on
 * both, and each starts once the worker is done with the previous upload
 * (untilWorkerDone) and its writes are flushed. Every upload is checked
 * (size and sha256 of the committed file) and deleted at the end.
 */
import { Agent } from 'node:http';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { progress, safeJson, settle, type BenchContext } from './context.js';
import { deleteFiles, putFile, type Uploaded } from './large.js';
import { checkUpload, median, medianCost, uploadUrl } from './large-suite.js';
import { writeLargeFile } from './payload.js';
import { costPer, metered, type CpuCost, type CpuUse } from './procfs.js';
import { byProcessCell, contextRow, fmt, verdictOf, type Row } from './table.js';
import { tusUpload, type TusRequestTiming, type TusTransfer } from './tus-client.js';
import { untilWorkerDone } from './worker-quiet.js';

/** tus-js-client's chunk: the page's own (RESUMABLE_CHUNK_BYTES' default). */
const CHUNK_BYTES = 8 * 1024 * 1024;
/** The goal: a tus upload at 0.8 of one request's MB/s or better. */
const TARGET_RATIO = 0.8;

export type ResumableSide = 'single' | 'tus';

export interface ResumableResults {
  bytes: number;
  sha256: string;
  chunkBytes: number;
  /** MB/s (10^6 bytes per second) of each timed upload, in order. */
  mbps: Record<ResumableSide, number[]>;
  /** Median of `mbps`. */
  median: Partial<Record<ResumableSide, number>>;
  /** CPU per MB, ms, of each timed upload: Trove's processes (the worker too) and the bench. */
  cpuMsPerMb: Record<ResumableSide, CpuCost[]>;
  /** The round with the median server CPU, whole. */
  cpuMedian: Partial<Record<ResumableSide, CpuCost>>;
  /** Where each tus upload's time went, in order. */
  tus: TusBreakdown[];
  /** The tus upload of median time, whole. */
  tusMedian: TusBreakdown | undefined;
  /** Peak RSS of each process during the rounds, bytes. */
  peakRss: Record<string, number>;
}

export async function runResumableSuite(ctx: BenchContext): Promise<ResumableResults> {
  const { opts } = ctx;
  const bytes = opts.largeBytes;
  const source = join(ctx.www, 'resumable.jpg');
  progress(`writing a ${bytes / 2 ** 20} MiB test file…`);
  const sha256 = await writeLargeFile(source, bytes);
  const results: ResumableResults = {
    bytes,
    sha256,
    chunkBytes: CHUNK_BYTES,
    mbps: { single: [], tus: [] },
    median: {},
    cpuMsPerMb: { single: [], tus: [] },
    cpuMedian: {},
    tus: [],
    tusMedian: undefined,
    peakRss: {},
  };
  const record = (side: ResumableSide, seconds: number, cpu: CpuUse, extra = '') => {
    const mbps = bytes / seconds / 1e6;
    const cost = costPer(cpu, bytes / 1e6);
    results.mbps[side].push(mbps);
    results.cpuMsPerMb[side].push(cost);
    progress(
      `  ${side}: ${mbps.toFixed(0)} MB/s, CPU ${cost.server.toFixed(2)} ms/MB (client ${cost.client.toFixed(2)})${extra}`,
    );
  };

  // One keep-alive agent for tus-js-client, as undici's pool is for the PUT.
  const agent = new Agent({ keepAlive: true });
  const uploads: Uploaded[] = [];
  const tusEndpoint = `${ctx.trove.origin}${ctx.trove.prefix}/tus/`;
  try {
    for (let round = 1; round <= opts.largeRounds; round++) {
      progress(`resumable vs one request, round ${round} of ${opts.largeRounds}`);
      const sides: ResumableSide[] = round % 2 ? ['single', 'tus'] : ['tus', 'single'];
      for (const side of sides) {
        await untilWorkerDone(ctx, uploads.at(-1)?.id, 'resumable');
        await settle();
        if (side === 'single') {
          const url = uploadUrl(ctx, `bench-resumable-${round}.jpg`);
          const { result: put, cpu } = await metered(ctx.trove.processes, () =>
            putFile(url, source, bytes, ctx.dispatcher).catch((err: Error) => {
              ctx.failures.push(`PUT ${url}: ${err.message}`);
              return undefined;
            }),
          );
          const uploaded = put && checkUpload(ctx, url, put, bytes, sha256);
          if (!uploaded) continue;
          uploads.push(uploaded);
          record('single', put.seconds, cpu);
        } else {
          const { result: sent, cpu } = await metered(ctx.trove.processes, () =>
            tusUpload(tusEndpoint, source, bytes, {
              chunkBytes: CHUNK_BYTES,
              metadata: { filename: `bench-resumable-tus-${round}.jpg`, max_downloads: '0' },
              agent,
            }).catch((err: Error) => {
              ctx.failures.push(`tus upload to ${tusEndpoint}: ${err.message}`);
              return undefined;
            }),
          );
          if (!sent) continue;
          const file = await checkTusFile(ctx, sent.url, bytes, sha256);
          if (file.uploaded) uploads.push(file.uploaded);
          if (!file.ok) continue;
          const b = tusBreakdown(sent);
          results.tus.push(b);
          record(
            'tus',
            sent.seconds,
            cpu,
            `; ${b.patches} PATCHes, the last one's wait ${b.lastWaitS.toFixed(2)} s`,
          );
        }
      }
    }
  } finally {
    agent.destroy();
  }

  for (const side of ['single', 'tus'] as const) {
    if (results.mbps[side].length === 0) continue;
    results.median[side] = median(results.mbps[side]);
    results.cpuMedian[side] = medianCost(results.cpuMsPerMb[side]);
  }
  const byTime = [...results.tus].sort((a, b) => a.totalS - b.totalS);
  results.tusMedian = byTime[(byTime.length - 1) >> 1];
  // bench.ts names this suite's phase 'resumable'.
  results.peakRss = ctx.sampler.peaksOf('resumable');
  ctx.sampler.setPhase('resumable, deleting');
  ctx.notes.push(
    ...(await deleteFiles(`${ctx.trove.origin}${ctx.trove.prefix}`, uploads, ctx.dispatcher)),
  );
  await rm(source, { force: true });
  return results;
}

/**
 * GET of the finished upload's URL: the committed file, which must have the
 * size and sha256 sent. `uploaded` (to delete) whenever the answer names
 * the file, even a wrong one.
 */
async function checkTusFile(
  ctx: BenchContext,
  url: string,
  bytes: number,
  sha256: string,
): Promise<{ ok: boolean; uploaded: Uploaded | undefined }> {
  try {
    const res = await request(url, { dispatcher: ctx.dispatcher });
    const text = await res.body.text();
    const file = safeJson(text) as
      { id?: string; size?: number; sha256?: string; delete_token?: string } | undefined;
    const uploaded =
      file?.id && file.delete_token ? { id: file.id, token: file.delete_token } : undefined;
    if (res.statusCode !== 200 || !uploaded) {
      ctx.failures.push(`GET ${url} → ${res.statusCode} ${text.slice(0, 200)}`);
      return { ok: false, uploaded };
    }
    if (file!.size !== bytes || file!.sha256 !== sha256) {
      ctx.failures.push(
        `GET ${url}: the committed file has ${file!.size} bytes, sha256 ${file!.sha256}; sent ${bytes}, ${sha256}`,
      );
      return { ok: false, uploaded };
    }
    return { ok: true, uploaded };
  } catch (err) {
    ctx.failures.push(`GET ${url}: ${(err as Error).message}`);
    return { ok: false, uploaded: undefined };
  }
}

/** Where one tus upload's time went, in seconds; all but `partWaitS` add up to `totalS`. */
export interface TusBreakdown {
  totalS: number;
  /** The creating POST. */
  createS: number;
  patches: number;
  /** The PATCHes from start to answer, without the last one's wait after its last byte. */
  patchS: number;
  /** Of `patchS`, sending the bodies: a PATCH's start → its last byte handed to the socket. */
  sendS: number;
  /**
   * The median wait of a PATCH but the last, from its last byte sent to its
   * answer: the gateway reading what the sockets still held, then the part
   * on a write quorum and recorded. Included in `patchS`.
   */
  partWaitS: number;
  /** The last PATCH's wait after its last byte: its part stored, every node's commit of its staged file, the file's commit. */
  lastWaitS: number;
  /** Outside any request: the client's own time (opening the next slice, reading an answer). */
  clientS: number;
}

export function tusBreakdown(t: TusTransfer): TusBreakdown {
  const span = (r: TusRequestTiming) => (r.answeredMs - r.startMs) / 1000;
  const wait = (r: TusRequestTiming) => (r.answeredMs - r.sentMs) / 1000;
  const patches = t.requests.filter((r) => r.method === 'PATCH');
  const create = t.requests.find((r) => r.method === 'POST');
  const last = patches.at(-1);
  const lastWaitS = last ? wait(last) : 0;
  const earlier = patches.slice(0, -1).map(wait);
  const inRequests = t.requests.reduce((sum, r) => sum + span(r), 0);
  return {
    totalS: t.seconds,
    createS: create ? span(create) : 0,
    patches: patches.length,
    patchS: patches.reduce((sum, r) => sum + span(r), 0) - lastWaitS,
    sendS: patches.reduce((sum, r) => sum + (r.sentMs - r.startMs) / 1000, 0),
    partWaitS: earlier.length > 0 ? median(earlier) : 0,
    lastWaitS,
    clientS: Math.max(0, t.seconds - inRequests),
  };
}

/** Report rows: tus MB/s beside one PUT's (ratio = tus / PUT), CPU per MB of each, and the tus time split. */
export function resumableRows(r: ResumableResults): Row[] {
  const size = `${r.bytes / 2 ** 20} MiB`;
  const { single, tus } = r.median;
  const cell = (v: number | undefined) => (v === undefined ? 'no result' : `${fmt(v)} MB/s`);
  const ratio = tus !== undefined && single ? tus / single : undefined;
  const rows: Row[] = [
    {
      figure: `${size} upload, tus in ${r.chunkBytes / 2 ** 20} MiB chunks`,
      trove: cell(tus),
      reference: `one PUT ${cell(single)}`,
      ratio,
      target: `≥ ${TARGET_RATIO}`,
      verdict: verdictOf(ratio, TARGET_RATIO),
      swift: '—',
    },
  ];
  const t = r.cpuMedian.tus;
  const s = r.cpuMedian.single;
  if (t) {
    rows.push(
      contextRow(
        `CPU per MB, ${size} upload, tus`,
        `${fmt(t.server)} ms/MB (${byProcessCell(t)})`,
        s ? `one PUT ${fmt(s.server)} ms/MB (${byProcessCell(s)})` : 'one PUT: no result',
        s && s.server > 0 ? t.server / s.server : undefined,
      ),
    );
  }
  const b = r.tusMedian;
  if (b) {
    rows.push(
      contextRow(
        `${size} tus upload's ${fmt(b.totalS)} s (median)`,
        breakdownCell(b),
        single ? `one PUT ${fmt(r.bytes / 1e6 / single)} s` : '—',
        undefined,
      ),
    );
  }
  return rows;
}

function breakdownCell(b: TusBreakdown): string {
  const ms = (s: number) => `${fmt(s * 1000)} ms`;
  return (
    `${b.patches} PATCHes ${fmt(b.patchS)} s (bodies sent ${fmt(b.sendS)} s, ` +
    `a part's wait after its last byte ${ms(b.partWaitS)}); ` +
    `last PATCH's wait ${fmt(b.lastWaitS)} s (part + commit); ` +
    `POST ${ms(b.createS)}; client ${ms(b.clientS)}`
  );
}

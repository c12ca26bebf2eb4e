/**
 * Two gateways behind nginx against one gateway direct (`--only lb`, against
 * `npm run start:lb`: nginx on the --gateway URL, the gateways on the next two
 * ports). The same closed-loop runs as the 64 KiB suite, on small downloads
 * and on `GET /files/:id`, at 64 and 256 connections, first through nginx,
 * then straight to gateway1: the ratio is what the second gateway (and the
 * nginx hop) buys on this machine.
 *
 * Then a rate ladder: `GET /files/:id` through nginx at a fixed offered rate
 * (500 → 5,000 req/s, `--duration` each) and the highest rate held with every
 * answer a 200, p99 under 50 ms, and at least 95 % of the offered rate served
 * (every step runs, after an unmeasured warm-up step).
 */
import autocannon from 'autocannon';
import { request } from 'undici';
import { progress, settle, type BenchContext } from './context.js';
import { jpegBody, sha256 } from './payload.js';
import { SMALL_BYTES, uploadOne } from './small-suite.js';
import { measureSmall, type SmallRun } from './small.js';
import { named } from './procfs.js';
import type { Row } from './table.js';

const CONNECTIONS = [64, 256];
const FILES = 20;
const LADDER = [500, 1000, 2000, 3000, 4000, 5000];
const LADDER_CONNECTIONS = 64;
const P99_BAR_MS = 50;

type What = 'download' | 'metadata';

export interface LbRun {
  what: What;
  connections: number;
  viaNginx: SmallRun;
  direct: SmallRun;
}

export interface LadderStep {
  rate: number;
  served: number;
  p99: number;
  failed: number;
  held: boolean;
}

export interface LbResults {
  front: string;
  direct: string;
  runs: LbRun[];
  ladder: LadderStep[];
  /** Highest offered rate held, or undefined when none was. */
  held: number | undefined;
}

/** gateway1 of `npm run start:lb`: the port after nginx's. */
function directOrigin(front: string): string {
  const u = new URL(front);
  u.port = String(Number(u.port || 80) + 1);
  return u.origin;
}

async function answers(origin: string): Promise<boolean> {
  try {
    const res = await request(`${origin}/health`, { signal: AbortSignal.timeout(2000) });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

export async function runLbSuite(ctx: BenchContext): Promise<LbResults | undefined> {
  const front = ctx.trove.origin;
  const direct = directOrigin(front);
  if (!(await answers(direct))) {
    ctx.notes.push(
      `lb: no gateway at ${direct} (the port after --gateway); run the cluster with RATE_LIMITS=off npm run start:lb`,
    );
    return undefined;
  }
  const body = jpegBody(SMALL_BYTES);
  const hash = sha256(body);
  const ids: string[] = [];
  progress(`lb: uploading ${FILES} files of 64 KiB…`);
  for (let i = 0; i < FILES; i++) ids.push(await uploadOne(ctx, `lb-${i}.jpg`, body, hash));

  const runs: LbRun[] = [];
  for (const what of ['download', 'metadata'] as const) {
    for (const connections of CONNECTIONS) {
      const measure = async (origin: string, label: string) => {
        await settle();
        let i = 0;
        const path = () =>
          `${what === 'download' ? '/download/' : '/files/'}${ids[i++ % ids.length]}`;
        const run = await measureSmall(
          {
            side: 'trove',
            op: 'get',
            origin,
            connections,
            nextPath: path,
            servers: named('trove', ctx.trove.pids),
          },
          ctx.opts.durationS,
          ctx.opts.warmupS,
        );
        progress(
          `lb: ${what} via ${label}, ${connections} connections: ${run.rps.toFixed(0)} req/s`,
        );
        const bad = run.non2xx + run.errors + run.timeouts;
        if (bad > 0) ctx.failures.push(`lb ${what} via ${label} c${connections}: ${bad} failed`);
        return run;
      };
      const viaNginx = await measure(front, 'nginx + 2 gateways');
      runs.push({ what, connections, viaNginx, direct: await measure(direct, 'one gateway') });
    }
  }

  const ladder: LadderStep[] = [];
  // Unmeasured: connections open and the JIT warm, so the first step is not a cold start.
  await ladderStep(front, `/files/${ids[0]}`, LADDER[0]!, ctx.opts.warmupS);
  for (const rate of LADDER) {
    await settle();
    const step = await ladderStep(front, `/files/${ids[0]}`, rate, ctx.opts.durationS);
    progress(
      `lb: ladder ${rate} req/s offered: ${step.served.toFixed(0)} served, p99 ${step.p99} ms, ${step.failed} failed`,
    );
    ladder.push(step); // every step runs: on a noisy machine one miss does not end the ladder
  }
  const held = ladder.filter((s) => s.held).at(-1)?.rate;
  return { front, direct, runs, ladder, held };
}

async function ladderStep(
  origin: string,
  path: string,
  rate: number,
  seconds: number,
): Promise<LadderStep> {
  const r = await autocannon({
    url: origin + path,
    connections: LADDER_CONNECTIONS,
    overallRate: rate,
    duration: seconds,
    timeout: 10,
  });
  const served = r.duration > 0 ? r['2xx'] / r.duration : 0;
  const failed = r.non2xx + r.errors + r.timeouts;
  const held = failed === 0 && r.latency.p99 < P99_BAR_MS && served >= rate * 0.95;
  return { rate, served, p99: r.latency.p99, failed, held };
}

export function lbRows(r: LbResults): Row[] {
  const fmt = (v: number) => v.toFixed(0);
  const rows = r.runs.map(({ what, connections, viaNginx: n, direct: d }): Row => ({
    figure: `${what === 'download' ? '64 KiB GET' : 'GET /files/:id'} via nginx + 2 gateways, ${connections} connections`,
    trove: `${fmt(n.rps)} req/s (p99 ${fmt(n.latencyMs.p99)} ms)`,
    reference: `one gateway direct ${fmt(d.rps)} req/s (p99 ${fmt(d.latencyMs.p99)} ms)`,
    ratio: d.rps > 0 ? n.rps / d.rps : undefined,
    target: '—',
    verdict: '—',
    swift: '—',
  }));
  const tried = r.ladder.map((s) => `${s.rate}${s.held ? '' : '✗'}`).join(' → ');
  rows.push({
    figure: `GET /files/:id rate held via nginx (p99 < ${P99_BAR_MS} ms, no errors)`,
    trove: r.held === undefined ? 'none held' : `${r.held} req/s`,
    reference: `ladder ${tried}`,
    ratio: undefined,
    target: '—',
    verdict: '—',
    swift: '—',
  });
  return rows;
}

/**
 * `npm run chaos`: the chaos drill. Starts a cluster of its own, runs
 * recorded client traffic while faults drawn from the seed come and go,
 * heals everything and checks Trove's promises against the history.
 * See docs/chaos.md.
 *
 * Exit code: 0 when every check held; 1 on any violation or crash; 2 when
 * it could not run (a flag, a missing tool, the lab would not start).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../test/harness.js';
import { LAB_TARGETS } from './chaos/lab.js';
import { USAGE, UsageError, parseChaosOptions, type ChaosOptions } from './chaos/options.js';
import { failed, renderPlan, renderReport } from './chaos/report.js';
import { recheck, runChaos } from './chaos/run.js';
import { planFaults } from './chaos/schedule.js';

function parse(): ChaosOptions | number {
  try {
    const parsed = parseChaosOptions(process.argv.slice(2));
    if (parsed !== 'help') return parsed;
    console.log(USAGE);
    return 0;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`chaos: ${err.message}\n\n${USAGE}`);
    return 2;
  }
}

async function main(): Promise<number> {
  const opts = parse();
  if (typeof opts === 'number') return opts;
  if (opts.check) {
    const result = await recheck(opts.check);
    console.log(renderReport(result));
    return failed(result) ? 1 : 0;
  }
  const plan = planFaults(opts.seed, opts.durationMs, LAB_TARGETS);
  if (opts.planOnly) {
    console.log(renderPlan({ plan, seed: opts.seed, durationMs: opts.durationMs }));
    return 0;
  }
  if (!existsSync(join(ROOT, 'dist', 'gateway', 'main.js'))) {
    console.error('chaos: dist/ is missing: run npm run build first');
    return 2;
  }
  const t0 = Date.now();
  const log = (msg: string) =>
    console.error(`[chaos +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
  let result;
  try {
    result = await runChaos({ ...opts, log });
  } catch (err) {
    console.error(`chaos: the drill could not run: ${(err as Error).stack ?? err}`);
    return 2;
  }
  console.log(renderReport(result));
  return failed(result) ? 1 : 0;
}

process.exit(await main());

/** The chaos drill's report, read like the failover drill's: what ran, what broke, what held. */
import { excerpt, type CheckResult } from './checker.js';
import type { Op } from './history.js';
import type { ChaosResult } from './run.js';
import { describeFault } from './schedule.js';

/** Violations shown per check, each with its history excerpt. */
const SHOWN = 3;

function opCounts(history: Op[]): string[] {
  const lines: string[] = [];
  for (const kind of ['upload', 'download', 'thumbnail', 'delete'] as const) {
    const ops = history.filter((o) => o.kind === kind);
    const n = (outcome: Op['outcome']) => ops.filter((o) => o.outcome === outcome).length;
    lines.push(
      `  ${kind.padEnd(10)} ${String(ops.length).padStart(6)}   ok ${n('ok')}  fail ${n('fail')}  info ${n('info')}`,
    );
  }
  return lines;
}

function faultLines(result: ChaosResult): string[] {
  return result.faults.map((f) => {
    const at = ((f.start - result.startedAt) / 1000).toFixed(1).padStart(5);
    const span =
      f.end !== undefined && f.end > f.start ? ` ${((f.end - f.start) / 1000).toFixed(1)} s` : '';
    return `  +${at} s  ${f.kind.padEnd(16)} ${f.target}${span}${f.error ? `  (${f.error})` : ''}`;
  });
}

function checkLines(result: ChaosResult, check: CheckResult): string[] {
  const mark = check.violations.length === 0 ? 'ok  ' : 'FAIL';
  const lines = [
    `  ${mark} ${check.check.padEnd(17)} ${check.title}: ${check.checked} checked, ${check.violations.length} violations${check.detail ? ` (${check.detail})` : ''}`,
  ];
  for (const v of check.violations.slice(0, SHOWN)) {
    lines.push(`       ✗ ${v.message}`);
    for (const line of excerpt(result.history, v)) lines.push(`           ${line}`);
  }
  if (check.violations.length > SHOWN)
    lines.push(`       … and ${check.violations.length - SHOWN} more`);
  return lines;
}

export function failed(result: ChaosResult): boolean {
  return result.crashes.length > 0 || result.results.some((r) => r.violations.length > 0);
}

export function renderReport(result: ChaosResult): string {
  const { final } = result;
  const redundancy =
    final.redundantAt !== undefined
      ? `${((final.redundantAt - final.healedAt) / 1000).toFixed(1)} s after healing`
      : 'never (timed out)';
  const crashLines = result.crashes.map(
    (c) =>
      `  ✗ ${c.name} exited on its own (${c.exit}) at +${((c.at - result.startedAt) / 1000).toFixed(1)} s`,
  );
  return [
    `Chaos drill — seed ${result.seed}, ${result.durationMs / 1000} s of traffic under faults`,
    '',
    `Operations (${result.history.length}):`,
    ...opCounts(result.history),
    '',
    `Faults (${result.faults.length}, planned ${result.plan.length}):`,
    ...faultLines(result),
    '',
    `Processes: ${result.crashes.length === 0 ? 'none crashed' : `${result.crashes.length} crashed`}`,
    ...crashLines,
    `Full redundancy: ${redundancy}; ${final.files.length} files in the metadata`,
    '',
    'Checks:',
    ...result.results.flatMap((c) => checkLines(result, c)),
    '',
    `History and final state: ${result.savedTo}`,
    ...(result.logs ? [`Process logs: ${result.logs}`] : []),
    `Reproduce the schedule: npm run chaos -- --seed ${result.seed} --duration ${result.durationMs / 1000}`,
    failed(result) ? 'RESULT: FAILED' : 'RESULT: every check held',
  ].join('\n');
}

export function renderPlan(result: Pick<ChaosResult, 'plan' | 'seed' | 'durationMs'>): string {
  return [
    `Fault schedule of seed ${result.seed} over ${result.durationMs / 1000} s:`,
    ...result.plan.map((f) => `  ${describeFault(f)}`),
  ].join('\n');
}

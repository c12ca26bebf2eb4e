/**
 * redundancy: once healed, every live file the drill uploaded is back to a
 * verified copy on each node the layout places it on, as many as the
 * replication factor asks when there are nodes enough. Files of uploads the
 * client never saw acknowledged are not the drill's to judge.
 */
import type { FinalFile } from '../history.js';
import { violation, type CheckResult, type Context, type Violation } from './context.js';

const LIVE = new Set(['active', 'exhausted']);

export function checkRedundancy(ctx: Context): CheckResult {
  const { finalState } = ctx;
  const violations: Violation[] = [];
  let checked = 0;
  for (const f of ctx.files) {
    if (!f.final || !LIVE.has(f.final.status)) continue;
    checked++;
    const problem = copiesProblem(f.final, finalState.replicationFactor);
    if (problem) violations.push(violation('redundancy', f, problem, [f.upload]));
  }
  if (finalState.redundantAt === undefined) {
    violations.push({
      check: 'redundancy',
      message: 'the cluster never reported full redundancy after healing',
      ops: [],
    });
  }
  return {
    check: 'redundancy',
    title: 'Full redundancy after healing',
    checked,
    violations,
    detail: redundancyDelay(finalState.healedAt, finalState.redundantAt),
  };
}

/** What the final copies of a live file lack, or undefined. */
function copiesProblem(ff: FinalFile, replicationFactor: number): string | undefined {
  const verified = new Set(ff.verified);
  const missing = ff.placement.filter((node) => !verified.has(node));
  if (missing.length > 0) {
    return `${ff.status} file has no verified copy on ${missing.join(', ')} (placed on ${ff.placement.join(', ')}; verified: ${ff.verified.join(', ') || 'none'})`;
  }
  if (verified.size < replicationFactor && ff.placement.length >= replicationFactor) {
    return `${ff.status} file has ${verified.size} verified copies of ${replicationFactor}`;
  }
  return undefined;
}

function redundancyDelay(healedAt: number, redundantAt: number | undefined): string {
  if (redundantAt === undefined) return 'full redundancy never reached';
  if (redundantAt <= healedAt) return 'full redundancy already when healed';
  return `full redundancy ${((redundantAt - healedAt) / 1000).toFixed(1)} s after healing`;
}

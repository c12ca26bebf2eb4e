/**
 * Every process the test harness starts carries the test run's id in its
 * environment, so that the end of the run can find and stop the ones a
 * failed or timed-out test left running (they would hold ports and CPU on a
 * developer's machine long after vitest exited).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** The environment variable that marks a test process with its run's id. */
export const TEST_PROCESS_MARK = 'TROVE_TEST_PROCESS';

/** SIGKILLs every process marked with `run`; returns how many there were. */
export function reapTestProcesses(run: string): number {
  const mark = `${TEST_PROCESS_MARK}=${run}`;
  let reaped = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    if (!environ.split('\0').includes(mark)) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
      reaped++;
    } catch {
      // exited meanwhile
    }
  }
  return reaped;
}

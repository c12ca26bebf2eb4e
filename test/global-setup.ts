/**
 * Builds dist/ once before the multi-process tests, so they run exactly what
 * `npm start` runs; at the end, stops what the tests' clusters left running.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ROOT } from './harness.js';
import { reapTestProcesses } from './test-processes.js';

export function setup(): () => void {
  // Workers start after this, and inherit it: the harness marks every process it starts with it.
  process.env.TROVE_TEST_RUN ??= randomBytes(6).toString('hex');
  const run = process.env.TROVE_TEST_RUN;
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' });
  return () => {
    const reaped = reapTestProcesses(run);
    if (reaped > 0) console.warn(`stopped ${reaped} test process(es) left running`);
  };
}

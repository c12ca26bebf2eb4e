/** Builds dist/ once before the multi-process tests, so they run exactly what `npm start` runs. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './harness.js';

export function setup(): void {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' });
}

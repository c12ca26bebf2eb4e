/**
 * `npm run chaos` as a user runs it: the real script in a child process,
 * seed 42, a short run. It starts a cluster of its own (nodes on network
 * namespaces, two gateways, two workers, a private PostgreSQL and Redis),
 * injects every kind of fault the seed plans, heals, and checks the history
 * (scripts/chaos/checker.ts, unit-tested on hand-made histories). Any
 * violation or crash exits 1 and fails this test with the report.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FAULT_KINDS } from '../scripts/chaos/schedule.js';
import { ROOT } from './harness.js';

const run = promisify(execFile);
const TSX = createRequire(import.meta.url).resolve('tsx');
/** Seconds of traffic under faults: enough for the seed to bring every kind of fault once. */
const DURATION_S = '38';

async function chaos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', TSX, join(ROOT, 'scripts/chaos.ts'), ...args],
      { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('npm run chaos', () => {
  it('plans the same faults for the same seed', async () => {
    const [a, b] = await Promise.all([
      chaos(['--seed', '42', '--duration', DURATION_S, '--plan']),
      chaos(['--seed', '42', '--duration', DURATION_S, '--plan']),
    ]);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    // The short run of the next test meets every kind of fault.
    for (const kind of FAULT_KINDS) expect(a.stdout).toMatch(new RegExp(` ${kind} `));
  });

  it('keeps every promise under every kind of fault (seed 42)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trove-chaos-test-'));
    const save = join(dir, 'run.json');
    const { code, stdout, stderr } = await chaos([
      '--seed',
      '42',
      '--duration',
      DURATION_S,
      '--save',
      save,
    ]);
    // A failing run keeps its history and logs (the report names them) for a look.
    if (code !== 0) console.log(`${stdout}\n${stderr.split('\n').slice(-40).join('\n')}`);
    else await rm(dir, { recursive: true, force: true });
    expect(code, stdout).toBe(0);
    expect(stdout).toContain('RESULT: every check held');
    // Every fault was injected and healed as planned (an error would show beside it).
    const faults = stdout.slice(stdout.indexOf('Faults ('), stdout.indexOf('Processes:'));
    for (const kind of FAULT_KINDS) expect(faults).toMatch(new RegExp(` ${kind} `));
    expect(faults).not.toMatch(/\((inject|heal): /);
    for (const check of [
      'no-lost-uploads',
      'limits',
      'expiry-and-delete',
      'right-bytes',
      'redundancy',
    ])
      expect(stdout).toMatch(new RegExp(`ok +${check} .*: [1-9]\\d* checked, 0 violations`));
  }, 300_000);
});

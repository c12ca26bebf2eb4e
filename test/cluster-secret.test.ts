/**
 * Processes that start together agree on one generated cluster secret, even
 * when one reads it while another is still creating it. strace holds the
 * creator inside the syscall that writes the secret or puts its name in
 * place, for real, while a second process starts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, waitFor } from './harness.js';
import { skipWithout } from './required-tools.js';
import { strace } from './strace.js';

const noStrace = skipWithout('strace', strace, 'apt-get install strace');

const LOAD = `
  const { loadClusterSecret } = await import(${JSON.stringify(join(ROOT, 'dist/shared/cluster-secret.js'))});
  try { console.log(loadClusterSecret(process.argv[1], undefined)); }
  catch (err) { console.log('ERROR ' + err.message); process.exit(1); }`;

interface Run {
  code: number | null;
  out: string;
  err: string;
  endedAt: number;
}

function run(command: string, args: string[]): Promise<Run> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  return new Promise((resolve) =>
    child.once('exit', (code) => resolve({ code, out: out.trim(), err, endedAt: Date.now() })),
  );
}

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('generated cluster secret', () => {
  it.skipIf(noStrace)(
    'is never read half-made by a process starting while another creates it',
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'trove-secret-'));
      const file = join(dir, 'cluster.secret');
      const slowed = 'write,link,linkat,rename,renameat,renameat2';
      // The creator pauses 4 s in every syscall that writes to the secret's path or puts a name there.
      const creator = run('strace', [
        '-f',
        '-qq',
        '-P',
        file,
        '-e',
        `trace=${slowed}`,
        '-e',
        `inject=${slowed}:delay_enter=4000000`,
        process.execPath,
        '--input-type=module',
        '-e',
        LOAD,
        dir,
      ]);
      await waitFor('the creator to start writing', async () => readdirSync(dir!).length > 0);
      const reader = await run(process.execPath, ['--input-type=module', '-e', LOAD, dir]);
      const made = await creator;

      // The fault happened: the creator was held in a syscall on the secret, and the reader ran meanwhile.
      expect(made.err).toContain('(DELAYED)');
      expect(reader.endedAt).toBeLessThan(made.endedAt);
      expect(reader.out).not.toMatch(/^ERROR/);
      expect(made.out).not.toMatch(/^ERROR/);
      expect(reader.code).toBe(0);
      expect(made.code).toBe(0);
      expect(reader.out).toHaveLength(43);
      expect(made.out).toBe(reader.out);
      expect(readFileSync(file, 'utf8').trim()).toBe(reader.out);
      expect(readdirSync(dir)).toEqual(['cluster.secret']);
    },
  );
});

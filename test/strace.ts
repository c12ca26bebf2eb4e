/**
 * strace for tests that must see what a process asks of the kernel, in what
 * order (an fsync before a response), or hold it inside a syscall.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** strace's path when it runs, else undefined (see skipWithout in required-tools.ts). */
export const strace = (() => {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return 'strace';
  } catch {
    return undefined;
  }
})();

/** Runs `during` while strace records `syscalls` (e.g. `fsync,writev`) of process `pid` and its threads. */
export async function traceSyscalls<T>(
  pid: number,
  syscalls: string,
  during: () => Promise<T>,
): Promise<{ result: T; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'trove-strace-'));
  const out = join(dir, 'trace');
  const strace = spawn('strace', [
    '-f',
    '-y',
    '-e',
    `trace=${syscalls}`,
    '-p',
    String(pid),
    '-o',
    out,
  ]);
  let err = '';
  const exited = new Promise<void>((resolve) => strace.once('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      strace.stderr.on('data', (d: Buffer) => {
        err += d;
        if (err.includes('attached')) resolve();
      });
      strace.once('exit', () => reject(new Error(`strace ended: ${err}`)));
    });
    const result = await during();
    strace.kill('SIGINT');
    await exited;
    return { result, lines: readFileSync(out, 'utf8').split('\n') };
  } finally {
    strace.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

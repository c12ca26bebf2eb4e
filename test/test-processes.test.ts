import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { expect, it } from 'vitest';
import { reapTestProcesses, TEST_PROCESS_MARK } from './test-processes.js';

it('stops the processes marked with the run, and only them', async () => {
  const start = (run: string) =>
    spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      env: { ...process.env, [TEST_PROCESS_MARK]: run },
      stdio: 'ignore',
    });
  const left = start('run-a');
  const other = start('run-b');
  await new Promise((done) => setTimeout(done, 200));
  try {
    expect(reapTestProcesses('run-a')).toBe(1);
    const [, signal] = await once(left, 'exit');
    expect(signal).toBe('SIGKILL');
    expect(other.exitCode).toBeNull();
    expect(other.signalCode).toBeNull();
  } finally {
    other.kill('SIGKILL');
    left.kill('SIGKILL');
  }
});

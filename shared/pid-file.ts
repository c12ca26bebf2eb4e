/**
 * storage/run/<name>.pid, written by each service itself so the file always
 * holds the pid of the process that serves (not of npm or a wrapper), which
 * is what `kill -9 $(cat storage/run/node1.pid)` needs.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function pidFilePath(storageDir: string, name: string): string {
  return join(storageDir, 'run', `${name}.pid`);
}

/** Writes our pid and removes the file at exit (if it still names us). */
export function writePidFile(storageDir: string, name: string): string {
  const file = pidFilePath(storageDir, name);
  mkdirSync(join(storageDir, 'run'), { recursive: true });
  writeFileSync(file, `${process.pid}\n`);
  process.once('exit', () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file);
    } catch {
      // already gone
    }
  });
  return file;
}

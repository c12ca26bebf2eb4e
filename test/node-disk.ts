/**
 * A storage node's disk of its own, for tests of a full disk: a tmpfs of a
 * given size mounted on the node's data directory (root only), filled to the
 * last byte by a ballast file and freed again. The node sees a real ENOSPC.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { open, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';

const BALLAST = '.test-ballast';

function isMountPoint(dir: string): boolean {
  try {
    execFileSync('mountpoint', ['-q', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Mounts a tmpfs of `sizeMb` on `dir` (made if missing), unless one is mounted there already. */
export function mountDisk(dir: string, sizeMb: number): void {
  mkdirSync(dir, { recursive: true });
  if (!isMountPoint(dir))
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir]);
}

/** Unmounts what mountDisk mounted (lazily: a process may still hold a file there). */
export function unmountDisk(dir: string): void {
  if (!isMountPoint(dir)) return;
  try {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  } catch {
    // gone meanwhile
  }
}

/** Writes a ballast file into `dir` until its filesystem has no byte left. */
export async function fillDisk(dir: string): Promise<void> {
  const file = await open(join(dir, BALLAST), 'a');
  try {
    const { bavail, bsize } = await statfs(dir);
    let left = bavail * bsize;
    const chunk = Buffer.alloc(4 * 1024 * 1024);
    while (left > 0) {
      const n = Math.min(chunk.length, left);
      await file.write(chunk, 0, n);
      left -= n;
    }
    // Whatever statfs did not count: small writes until the disk says no.
    const small = Buffer.alloc(4096);
    for (;;) await file.write(small);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await file.close();
  }
}

/** Removes the ballast of fillDisk. */
export async function freeDisk(dir: string): Promise<void> {
  await rm(join(dir, BALLAST), { force: true });
}

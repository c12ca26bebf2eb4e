/**
 * The three-copy sync limit, the reference for the 64 KiB upload rate: how
 * many 64 KiB writes/s this disk makes durable one at a time (`O_DSYNC`,
 * each write returns once its data and the file's size are on disk), ÷ 3,
 * since Trove makes three durable copies before its 201. No store keeping
 * three synced copies on this one disk can answer more uploads a second
 * from a single writer per copy.
 */
import { closeSync, constants, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const CHUNK = 64 * 1024;
/** A fresh file every 16 MiB, so the measurement appends as a node does and never fills the disk. */
const WRITES_PER_FILE = 256;
export const REPLICAS = 3;

export interface SyncLimit {
  /** Flushed 64 KiB writes per second, one at a time, appended to fresh files. */
  dsyncWritesPerS: number;
  /** dsyncWritesPerS ÷ 3: three-copy small writes per second. */
  threeCopyPerS: number;
  seconds: number;
  writes: number;
}

/**
 * Writes 64 KiB chunks with `O_DSYNC` to files in `dir` for about `seconds`.
 * Synchronous on purpose: nothing else runs in the bench meanwhile, and a
 * thread-pool hop per write would be a cost of the tool, not of the disk.
 */
export function measureSyncLimit(dir: string, seconds: number): SyncLimit {
  const chunk = Buffer.alloc(CHUNK, 0xa5);
  const path = join(dir, 'dsync.bin');
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_DSYNC;
  const started = performance.now();
  const end = started + seconds * 1000;
  let writes = 0;
  let fd = openSync(path, flags);
  try {
    while (performance.now() < end) {
      if (writes > 0 && writes % WRITES_PER_FILE === 0) {
        closeSync(fd);
        fd = openSync(path, flags);
      }
      writeSync(fd, chunk);
      writes++;
    }
  } finally {
    closeSync(fd);
    unlinkSync(path);
  }
  const elapsed = (performance.now() - started) / 1000;
  const dsyncWritesPerS = writes / elapsed;
  return {
    dsyncWritesPerS,
    threeCopyPerS: dsyncWritesPerS / REPLICAS,
    seconds: elapsed,
    writes,
  };
}

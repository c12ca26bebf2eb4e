/**
 * Positional reads of an open file, looped until done.
 *
 * `read(2)` may return fewer bytes than asked without being at the end of the
 * file (a signal, a network or FUSE file system, a read over 2 GiB), so one
 * short read proves nothing about the file's length: only a read that returns
 * 0 does. Every positional read of a blob or its block sums goes through
 * `readFully`.
 */
import fsCb from 'node:fs';

/** Callback fs calls: for small reads they cost a fraction of a FileHandle's CPU. */
function fsRead(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  return new Promise((resolve, reject) =>
    fsCb.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

/**
 * Reads into `buf[offset, offset + length)` from `position` until at least
 * `enough` bytes (default: all of them) are in or the file ends; answers how
 * many it read. Asking for more than `enough` lets one read also notice a
 * file longer than expected without a second read at the end of a normal one.
 */
export async function readFully(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
  enough = length,
): Promise<number> {
  let done = 0;
  do {
    const n = await fsRead(fd, buf, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  } while (done < enough);
  return done;
}

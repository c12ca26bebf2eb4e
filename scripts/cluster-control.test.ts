import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blobsOnDisk, missingOnDisk } from './cluster-control.js';

const SHA = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);

describe('blobsOnDisk', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trove-cluster-control-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("reads each blob's key and sha256 from its name, not its block sums beside it", async () => {
    await mkdir(join(dir, 'blobs', '3f'), { recursive: true });
    // A large blob: its block sums sit beside it, and may be listed before or after it.
    await writeFile(join(dir, 'blobs', '3f', `big@${SHA}.blocks`), 'sums');
    await writeFile(join(dir, 'blobs', '3f', `big@${SHA}`), 'blob');
    await writeFile(join(dir, 'blobs', '3f', `small.thumb@${OTHER}`), 'blob');
    await writeFile(join(dir, 'blobs', '3f', 'not-a-blob'), '');

    const blobs = await blobsOnDisk(dir);
    expect([...blobs.keys()].sort()).toEqual(['big', 'small.thumb']);
    expect(blobs.get('big')).toEqual({ path: join(dir, 'blobs', '3f', `big@${SHA}`), sha256: SHA });
    expect(
      await missingOnDisk(
        dir,
        new Map([
          ['big', SHA],
          ['small.thumb', SHA],
          ['gone', SHA],
        ]),
      ),
    ).toEqual(['small.thumb', 'gone']);
  });

  it('finds nothing on a node without a blobs directory', async () => {
    expect((await blobsOnDisk(join(dir, 'none'))).size).toBe(0);
  });
});

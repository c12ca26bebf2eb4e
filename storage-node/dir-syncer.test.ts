import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DirSyncer } from './dir-syncer.js';

describe('DirSyncer', () => {
  let dir: string;
  let fsyncs: { mock: { calls: unknown[] } };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trove-dirsync-'));
    // Count real fsyncs: the spy calls through to FileHandle.prototype.sync.
    const probe = await open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    fsyncs = vi.spyOn(proto, 'sync');
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves every concurrent caller', async () => {
    const syncer = new DirSyncer();
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => syncer.sync(dir)));
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
  });

  it('groups concurrent callers into fewer fsyncs', async () => {
    const syncer = new DirSyncer();
    const n = 20;
    await Promise.all(Array.from({ length: n }, () => syncer.sync(dir)));
    expect(fsyncs.mock.calls.length).toBeLessThan(n);
    // One running when the others arrived, one shared by everyone who came later.
    expect(fsyncs.mock.calls.length).toBe(2);
  });

  it('makes a caller that arrives mid-sync wait for a later fsync', async () => {
    const syncer = new DirSyncer();
    const order: string[] = [];
    const first = syncer
      .sync(dir)
      .then(() => order.push(`first after ${fsyncs.mock.calls.length}`));
    const second = syncer
      .sync(dir)
      .then(() => order.push(`second after ${fsyncs.mock.calls.length}`));
    await Promise.all([first, second]);
    expect(order).toEqual(['first after 1', 'second after 2']);
  });

  it('starts afresh once idle', async () => {
    const syncer = new DirSyncer();
    await syncer.sync(dir);
    await syncer.sync(dir);
    await syncer.sync(dir);
    expect(fsyncs.mock.calls.length).toBe(3);
  });

  it('keeps directories apart', async () => {
    const other = await mkdtemp(join(tmpdir(), 'trove-dirsync-other-'));
    try {
      const syncer = new DirSyncer();
      await Promise.all([syncer.sync(dir), syncer.sync(other)]);
      expect(fsyncs.mock.calls.length).toBe(2);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('rejects for a missing directory, including callers queued behind the failed one', async () => {
    const syncer = new DirSyncer();
    const missing = join(dir, 'missing');
    await expect(syncer.sync(missing)).rejects.toMatchObject({ code: 'ENOENT' });

    const failing = syncer.sync(missing);
    const queued = syncer.sync(missing);
    await expect(failing).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(queued).rejects.toMatchObject({ code: 'ENOENT' });
    // A failure leaves no stuck state behind for a directory that exists.
    await expect(syncer.sync(dir)).resolves.toBeUndefined();
  });
});

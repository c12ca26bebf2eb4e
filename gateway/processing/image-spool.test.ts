import { pbkdf2 } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { spoolImage } from './image-spool.js';
import { SpoolBudget } from './spool-budget.js';

const dir = mkdtempSync(join(tmpdir(), 'image-spool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const options = (signal: AbortSignal) => ({
  label: 'x',
  maxBytes: 1000,
  signal,
  claim: new SpoolBudget(1000).claim(),
});

/**
 * Keeps every thread of libuv's pool busy for a moment (as sharp and a busy
 * disk do in the gateway), so that a file open() queued now waits its turn.
 */
function busyThreadPool(): Promise<unknown> {
  const threads = 16; // at least UV_THREADPOOL_SIZE (4 unless raised)
  const work = () => promisify(pbkdf2)('x', 'salt', 50_000, 32, 'sha256');
  return Promise.all(Array.from({ length: threads }, work));
}

describe('spoolImage', () => {
  // Its file is created by an open() on the thread pool. Settling before that open is done would
  // let the caller's rm run first, and the file appear after it: a temp file left for ever.
  it('settles a failure only once its file is created and closed, so the caller can remove it', async () => {
    for (const [name, source, signal] of [
      ['stopped', Readable.from([Buffer.from('x')]), AbortSignal.abort(new Error('stopped'))],
      ['empty', Readable.from([]), new AbortController().signal],
    ] as const) {
      const path = join(dir, name);
      const busy = busyThreadPool();
      await expect(spoolImage(source, path, options(signal)), name).rejects.toThrow();
      expect(existsSync(path), `${name}: the file exists when spoolImage settles`).toBe(true);
      await busy;
    }
  });
});

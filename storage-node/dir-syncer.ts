/**
 * fsync of directories, with group commit and cached handles.
 *
 * Callers that arrive while a sync of the same directory is running share the
 * next one, so N concurrent renames into one directory cost two fsyncs, not N.
 * Each directory is opened once and its handle kept (a node has a few hundred
 * directories at most), so a sync is one syscall, not open + fsync + close.
 */
import { open, type FileHandle } from 'node:fs/promises';

interface DirState {
  handle: Promise<FileHandle> | undefined;
  running: Promise<void> | undefined;
  next: Promise<void> | undefined;
}

export class DirSyncer {
  private readonly dirs = new Map<string, DirState>();

  /** Resolves once every rename into `dir` made before the call is durable. */
  sync(dir: string): Promise<void> {
    let state = this.dirs.get(dir);
    if (!state) {
      state = { handle: undefined, running: undefined, next: undefined };
      this.dirs.set(dir, state);
    }
    if (!state.running) return this.start(dir, state);
    // A sync already running may have started before our rename: wait for the one after it.
    const s = state;
    s.next ??= state.running.then(
      () => this.start(dir, s),
      () => this.start(dir, s),
    );
    return s.next;
  }

  /** Closes the cached directory handles. */
  async close(): Promise<void> {
    const handles = [...this.dirs.values()].map((s) => s.handle);
    this.dirs.clear();
    await Promise.all(handles.map((h) => h?.then((fh) => fh.close()).catch(() => undefined)));
  }

  private start(dir: string, state: DirState): Promise<void> {
    state.next = undefined;
    const run = this.fsync(dir, state).finally(() => {
      if (state.running === run) state.running = undefined;
    });
    state.running = run;
    return run;
  }

  private async fsync(dir: string, state: DirState): Promise<void> {
    state.handle ??= open(dir, 'r');
    try {
      await (await state.handle).sync();
    } catch (err) {
      // A directory that vanished or failed is reopened next time rather than kept broken.
      const stale = state.handle;
      state.handle = undefined;
      void stale.then((fh) => fh.close()).catch(() => undefined);
      throw err;
    }
  }
}

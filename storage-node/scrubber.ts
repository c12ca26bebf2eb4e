/**
 * Scrub: a background loop that re-reads every blob on disk, on a slow
 * schedule, and checks its sha256 against the one in its file name. A blob
 * that fails is quarantined exactly as a failed read quarantines it (it leaves
 * the keydir and the `GET /blobs` listing), so the cluster's anti-entropy sees
 * it missing and copies it back from a healthy replica.
 *
 * Reads are streamed through one small buffer and paced to `bytesPerSecond`,
 * so a pass never holds a large blob in memory nor starves user requests. A
 * blob deleted or replaced while a pass runs is skipped, not reported.
 *
 * Passes start `intervalSeconds` apart (the first one after one interval,
 * not at start-up); one that overruns the interval is followed by the next at
 * once, never overlapped. `startNow()` (the node's `POST /scrub`) starts one
 * at once unless one is under way.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../shared/logger.js';
import type { BlobInfo, FsBlobStore } from './blob-store.js';

/** What the scrubber needs of the store. */
export type ScrubbedStore = Pick<FsBlobStore, 'list' | 'stat' | 'pathOf' | 'quarantine'>;

export interface ScrubberOptions {
  store: ScrubbedStore;
  log: Logger;
  /** Time between the starts of two passes, in seconds; 0 disables the loop. */
  intervalSeconds: number;
  /** Read rate limit. */
  bytesPerSecond: number;
}

/** As `GET /health` reports it. */
export interface ScrubStatus {
  /** A pass is under way (scheduled, or asked for with `POST /scrub`). */
  running: boolean;
  /** Start of the latest pass (possibly still running), ISO 8601. */
  last_started: string | null;
  /** End of the last finished pass. */
  last_finished: string | null;
  /** Blobs read and verified by the last finished pass. */
  blobs_checked: number;
  /** Bytes read by the last finished pass. */
  bytes_checked: number;
  /** Corrupt blobs quarantined since the process started. */
  corrupt_found: number;
}

export interface PassResult {
  blobsChecked: number;
  bytesChecked: number;
  corrupt: number;
  /** Listed, then deleted or replaced before (or while) being read, or unreadable (logged). */
  skipped: number;
}

/** Largest read; smaller when the rate limit is below it, so one read never bursts over a second's budget. */
const MAX_CHUNK = 256 * 1024;
/** Every blob costs at least this much of the budget: many tiny files still cost a seek each. */
const MIN_COST = 4096;
/** Budget left unused (a slow disk, a pause) is forgotten beyond this much, so no catch-up burst. */
const MAX_LAG_MS = 1000;
/** setTimeout's ceiling (about 24.8 days); longer waits are slept in pieces. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const LIST_PAGE = 1000;

export class Scrubber {
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  /** The pass under way, if any: there is never more than one. */
  private current: Promise<PassResult> | undefined;
  private readonly chunk: number;
  private state: Omit<ScrubStatus, 'running'> = {
    last_started: null,
    last_finished: null,
    blobs_checked: 0,
    bytes_checked: 0,
    corrupt_found: 0,
  };
  /** Pacing: the budget's reference time and the bytes charged against it since. */
  private paceStart = 0;
  private paceBytes = 0;

  constructor(private readonly opts: ScrubberOptions) {
    if (!(opts.bytesPerSecond > 0)) throw new Error('bytesPerSecond must be positive');
    this.chunk = Math.max(MIN_COST, Math.min(MAX_CHUNK, Math.floor(opts.bytesPerSecond)));
  }

  /** Starts the schedule (nothing when the interval is 0); the first pass comes after one interval. */
  start(): void {
    if (this.loop || this.opts.intervalSeconds <= 0) return;
    this.loop = this.run().catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.opts.log.error({ err }, 'scrub loop stopped');
    });
  }

  /** Stops the schedule and any pass under way (between two reads); resolves once it has. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    await this.current?.catch(() => undefined); // one started by startNow()
  }

  status(): ScrubStatus {
    return { running: this.current !== undefined, ...this.state };
  }

  /**
   * Starts a pass now, in the background, unless one is under way (false
   * then). Works with the schedule off too; the schedule itself is unchanged.
   */
  startNow(): boolean {
    if (this.current || this.abort.signal.aborted) return false;
    this.runPass().catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.opts.log.error({ err }, 'scrub pass failed');
    });
    return true;
  }

  /** One full pass over every blob on disk; asked for while one runs, it is that one. */
  runPass(): Promise<PassResult> {
    this.current ??= this.pass().finally(() => (this.current = undefined));
    return this.current;
  }

  private async pass(): Promise<PassResult> {
    const started = Date.now();
    this.state.last_started = new Date(started).toISOString();
    this.paceStart = started;
    this.paceBytes = 0;
    const result: PassResult = { blobsChecked: 0, bytesChecked: 0, corrupt: 0, skipped: 0 };
    let after: string | undefined;
    do {
      const page = await this.opts.store.list(after, LIST_PAGE);
      for (const listed of page.blobs) {
        this.abort.signal.throwIfAborted();
        try {
          await this.checkOne(listed, result);
        } catch (err) {
          if (this.abort.signal.aborted) throw err;
          // An unreadable file (EIO…) must not stop every pass at the same blob.
          result.skipped++;
          this.opts.log.error({ key: listed.key, err }, 'scrub: could not read blob');
        }
      }
      after = page.next ?? undefined;
    } while (after);
    const finished = Date.now();
    this.state = {
      ...this.state,
      last_finished: new Date(finished).toISOString(),
      blobs_checked: result.blobsChecked,
      bytes_checked: result.bytesChecked,
    };
    this.opts.log.info(
      { ...result, durationMs: finished - started },
      `scrub pass finished: ${result.blobsChecked} blobs checked, ${result.corrupt} corrupt`,
    );
    return result;
  }

  private async run(): Promise<void> {
    const intervalMs = this.opts.intervalSeconds * 1000;
    let next = Date.now() + intervalMs;
    for (;;) {
      await this.sleepUntil(next);
      next = Date.now() + intervalMs;
      try {
        await this.runPass();
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.opts.log.error({ err }, 'scrub pass failed; retrying at the next interval');
      }
    }
  }

  private async sleepUntil(when: number): Promise<void> {
    for (let left = when - Date.now(); left > 0; left = when - Date.now()) {
      await sleep(Math.min(left, MAX_TIMER_MS), undefined, { signal: this.abort.signal });
    }
    this.abort.signal.throwIfAborted();
  }

  /** Reads and verifies one listed blob; quarantines it if it fails and is still the current version. */
  private async checkOne(listed: BlobInfo, result: PassResult): Promise<void> {
    const { store, log } = this.opts;
    const current = await store.stat(listed.key);
    if (!current || current.sha256 !== listed.sha256) {
      result.skipped++; // deleted or replaced since the listing
      return;
    }
    const path = store.pathOf(current);
    const read = await this.hashFile(path);
    if (!read) {
      result.skipped++; // gone between the check and the open
      return;
    }
    result.bytesChecked += read.bytes;
    if (read.sha256 === current.sha256) {
      result.blobsChecked++;
      return;
    }
    // Only quarantine the file that was read: a delete and a re-upload of the
    // same bytes meanwhile puts a new, good file under the same name.
    const now = await stat(path).catch(() => undefined);
    if (
      !now ||
      now.ino !== read.ino ||
      now.dev !== read.dev ||
      !(await store.quarantine(current))
    ) {
      result.skipped++;
      return;
    }
    result.blobsChecked++;
    result.corrupt++;
    this.state.corrupt_found++;
    log.warn(
      { key: current.key, expected: current.sha256, actual: read.sha256, size: read.bytes },
      'scrub: corrupt blob quarantined',
    );
  }

  /** Streams a file through the hash at the paced rate; undefined when it no longer exists. */
  private async hashFile(
    path: string,
  ): Promise<{ sha256: string; bytes: number; ino: number; dev: number } | undefined> {
    const file = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!file) return undefined;
    try {
      const { ino, dev } = await file.stat();
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(this.chunk);
      let bytes = 0;
      for (;;) {
        this.abort.signal.throwIfAborted();
        const { bytesRead } = await file.read(buf, 0, buf.length, bytes);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        bytes += bytesRead;
        await this.pace(bytesRead);
      }
      if (bytes < MIN_COST) await this.pace(MIN_COST - bytes);
      return { sha256: hash.digest('hex'), bytes, ino, dev };
    } finally {
      await file.close();
    }
  }

  /** Waits until `bytes` more fit in the rate limit. */
  private async pace(bytes: number): Promise<void> {
    this.paceBytes += bytes;
    const due = this.paceStart + (this.paceBytes * 1000) / this.opts.bytesPerSecond;
    const now = Date.now();
    if (due > now) {
      await sleep(due - now, undefined, { signal: this.abort.signal });
    } else if (now - due > MAX_LAG_MS) {
      this.paceStart = now;
      this.paceBytes = 0;
    }
  }
}

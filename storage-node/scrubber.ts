/**
 * Scrub: a background loop that re-reads every blob on disk, on a slow
 * schedule, and checks its sha256 against the one in its file name. A blob
 * that fails is quarantined exactly as a failed read quarantines it (it leaves
 * the keydir and the `GET /blobs` listing), so the cluster's anti-entropy sees
 * it missing and copies it back from a healthy replica.
 *
 * The same read checks a large blob's block sums (block-sums.ts): once the
 * whole blob verified, sums that are missing (a blob stored before they
 * existed) or differ from the data (a rotten sidecar) are written anew. The
 * data is good, so a bad sidecar is rebuilt, not quarantined.
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
import { open, readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../shared/logger.js';
import type { BlobInfo, FsBlobStore } from './blob-store.js';
import { BlockDigester, encodeSums, needsSums } from './block-sums.js';

/** What the scrubber needs of the store. */
export type ScrubbedStore = Pick<
  FsBlobStore,
  'list' | 'stat' | 'pathOf' | 'quarantine' | 'sumsPathOf' | 'writeSums'
>;

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
  /** Block sums written for verified blobs that had none or damaged ones. */
  sumsWritten: number;
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
    const result: PassResult = {
      blobsChecked: 0,
      bytesChecked: 0,
      corrupt: 0,
      skipped: 0,
      sumsWritten: 0,
    };
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
      if (needsSums(read.bytes) && (await this.checkSums(current, path, read)))
        result.sumsWritten++;
      return;
    }
    // Only quarantine the file that was read: a delete and a re-upload of the
    // same bytes meanwhile puts a new, good file under the same name.
    if (!(await sameFile(path, read)) || !(await store.quarantine(current))) {
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

  /**
   * Compares a verified blob's sidecar with the sums of the bytes just read;
   * writes it anew when missing or different. True when it wrote one.
   */
  private async checkSums(current: BlobInfo, path: string, read: FileRead): Promise<boolean> {
    const { store, log } = this.opts;
    const want = encodeSums(current.sha256, read.bytes, read.digests);
    const have = await readFile(store.sumsPathOf(current)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (have?.equals(want)) return false;
    // The blob read may have been replaced by now: sums only for the file that verified.
    if (!(await sameFile(path, read))) return false;
    // A failed write (a full disk) costs only speed: ranges fall back to the whole sha256.
    const written = await store.writeSums(current, want).catch((err: unknown) => {
      log.error({ key: current.key, err }, 'scrub: could not write block sums');
      return false;
    });
    if (!written) return false;
    if (have) log.warn({ key: current.key }, 'scrub: damaged block sums rebuilt');
    else log.info({ key: current.key }, 'scrub: block sums written');
    return true;
  }

  /** Streams a file through the hash at the paced rate; undefined when it no longer exists. */
  private async hashFile(path: string): Promise<FileRead | undefined> {
    const file = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!file) return undefined;
    try {
      const { ino, dev } = await file.stat();
      const digester = new BlockDigester();
      const buf = Buffer.allocUnsafe(this.chunk);
      for (;;) {
        this.abort.signal.throwIfAborted();
        const { bytesRead } = await file.read(buf, 0, buf.length, digester.bytes);
        if (bytesRead === 0) break;
        digester.update(buf.subarray(0, bytesRead));
        await this.pace(bytesRead);
      }
      if (digester.bytes < MIN_COST) await this.pace(MIN_COST - digester.bytes);
      const { sha256, size, digests } = digester.finish();
      return { sha256, bytes: size, digests, ino, dev };
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

/** What reading one blob file found. */
interface FileRead {
  sha256: string;
  bytes: number;
  /** sha256 of each block (block-sums.ts). */
  digests: Buffer[];
  ino: number;
  dev: number;
}

/** Whether `path` is still the file that was read (not deleted, nor replaced by a new upload). */
async function sameFile(path: string, read: FileRead): Promise<boolean> {
  const now = await stat(path).catch(() => undefined);
  return now !== undefined && now.ino === read.ino && now.dev === read.dev;
}

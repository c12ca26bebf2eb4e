/** What every part of a bench run shares: options, targets, scratch space, and the list of failures. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { Nginx } from './nginx.js';
import type { BenchOptions } from './options.js';
import type { RssSampler, Watched } from './procfs.js';

export interface BenchContext {
  opts: BenchOptions;
  /** HTTP client for everything but the autocannon runs. */
  dispatcher: Dispatcher;
  trove: {
    /** Scheme, host and port, e.g. http://127.0.0.1:8080. */
    origin: string;
    /** Path the gateway is mounted under ('' normally; set when behind a proxy path). */
    prefix: string;
    /** Gateway and storage nodes that are alive: the request path, for CPU accounting. */
    pids: () => number[];
    /** Every process of the cluster that is alive (the worker too), by name, for CPU per process. */
    processes: () => Watched[];
  };
  /** The reference server; undefined when nginx is not installed or did not start. */
  nginx: Nginx | undefined;
  /** nginx's document root: the same bytes Trove gets, as plain files. */
  www: string;
  /** Temp space for the disk references (three-fsynced-files, the sync limit). */
  scratch: string;
  sampler: RssSampler;
  /** Failed requests and wrong bytes; any entry makes the run fail. */
  failures: string[];
  /** Caveats printed under the table. */
  notes: string[];
}

/** Progress goes to stderr, so stdout holds only the report. */
export function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/**
 * Lets the previous run's aftermath pass before the next one starts: dirty
 * pages written back (nginx does not fsync, and its writeback would otherwise
 * land in the next measurement) and aborted in-flight requests cleaned up.
 */
export async function settle(): Promise<void> {
  spawnSync('sync');
  await sleep(500);
}

export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An executable on PATH, or in the sbin directories Debian keeps off a user's PATH. */
export function findExecutable(name: string): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/local/sbin',
    '/sbin',
  ];
  return dirs
    .filter((dir) => dir.startsWith('/'))
    .map((dir) => join(dir, name))
    .find((path) => existsSync(path));
}

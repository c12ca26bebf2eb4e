/** Command-line flags of `npm run drill`. */
import { intFlag, parseFlags, UsageError } from '../cli-flags.js';

export interface DrillOptions {
  /** Base URL of the Trove gateway. */
  gateway: string;
  /** Files uploaded before the kill. */
  files: number;
  /** Concurrent clients of the background traffic (and of the full checks). */
  concurrency: number;
  /** The storage node to kill. */
  node: string;
  /** Remove the node's data directory before restarting it. */
  wipe: boolean;
  /** Longest wait for full redundancy after the restart, in seconds. */
  timeoutS: number;
}

export const USAGE = `usage: npm run drill -- [--node <id>] [--wipe] [--files <n>] [--concurrency <n>] [--timeout <s>] [--gateway <url>]

  --node <id>         storage node to kill -9 (default node2)
  --wipe              delete the node's data directory (STORAGE_DIR/<id>) before restarting it
  --files <n>         files uploaded before the kill (default 50)
  --concurrency <n>   concurrent clients of the background traffic (default 8)
  --timeout <s>       longest wait without healing progress after the restart (default 120)
  --gateway <url>     Trove gateway (default http://127.0.0.1:8080)

Run the cluster first (npm start), with the same STORAGE_DIR, in another terminal.
The restarted node runs on its own afterwards: npm start no longer owns it.`;

export { UsageError };

export function parseDrillOptions(argv: string[]): DrillOptions | 'help' {
  const values = parseFlags(argv, {
    gateway: { type: 'string', default: 'http://127.0.0.1:8080' },
    files: { type: 'string' },
    concurrency: { type: 'string' },
    node: { type: 'string', default: 'node2' },
    wipe: { type: 'boolean', default: false },
    timeout: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  const gateway = values.gateway.replace(/\/+$/, '');
  if (!URL.canParse(gateway) || !/^https?:/.test(gateway)) {
    throw new UsageError(`--gateway: "${values.gateway}" is not an http(s) URL`);
  }
  return {
    gateway,
    files: intFlag('files', values.files, 50, 100_000),
    concurrency: intFlag('concurrency', values.concurrency, 8, 256),
    node: values.node,
    wipe: values.wipe,
    timeoutS: intFlag('timeout', values.timeout, 120, 24 * 3600),
  };
}

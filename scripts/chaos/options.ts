/** Command-line flags of `npm run chaos`. */
import { randomInt } from 'node:crypto';
import { intFlag, parseFlags, UsageError } from '../cli-flags.js';

export interface ChaosOptions {
  /** Seeds the fault schedule and the clients' choices. */
  seed: number;
  /** How long traffic and faults run, in ms (healing and checks come after). */
  durationMs: number;
  /** Concurrent clients. */
  clients: number;
  /** Print the fault schedule and exit. */
  planOnly: boolean;
  /** Where the history and final state are saved (JSON); undefined = a temp file. */
  save: string | undefined;
  /** Check the history saved in this file again instead of running. */
  check: string | undefined;
}

export const USAGE = `usage: npm run chaos -- [--seed <n>] [--duration <s>] [--clients <n>] [--plan] [--save <file>]
       npm run chaos -- --check <file>

  --seed <n>       seeds the fault schedule and the traffic's choices (default: a random one, printed)
  --duration <s>   seconds of traffic under faults (default 60); healing and checks come after
  --clients <n>    concurrent clients (default 5)
  --plan           print the seed's fault schedule and exit
  --save <file>    where to write the history and final state as JSON (default: a file in the temp directory)
  --check <file>   run the checker again on a saved run (its seed regenerates the contents)

Starts its own cluster (3 nodes on 3 network namespaces, 2 gateways, 2 workers,
a private PostgreSQL and Redis; RabbitMQ on 127.0.0.1:5672): needs root,
iproute2, PostgreSQL's server binaries, redis-server and rabbitmqctl, and
npm run build. Exit 0: every check held; 1: a violation; 2: it could not run.
See docs/chaos.md.`;

export { UsageError };

export function parseChaosOptions(argv: string[]): ChaosOptions | 'help' {
  const values = parseFlags(argv, {
    seed: { type: 'string' },
    duration: { type: 'string' },
    clients: { type: 'string' },
    plan: { type: 'boolean', default: false },
    save: { type: 'string' },
    check: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  return {
    seed: intFlag('seed', values.seed, randomInt(1, 1_000_000), 2 ** 31 - 1, 0),
    durationMs: intFlag('duration', values.duration, 60, 3600, 10) * 1000,
    clients: intFlag('clients', values.clients, 5, 64),
    planOnly: values.plan,
    save: values.save,
    check: values.check,
  };
}

/** The command line of `npm run cluster`: a command, its node id, and its flags, strictly. */
import { MAX_WEIGHT } from '../../shared/layout.js';
import { UsageError, parseFlagsAndWords } from '../cli-flags.js';

export type ClusterCommand =
  | { name: 'show'; json: boolean }
  | {
      name: 'add';
      id: string;
      url: string;
      zone: string | undefined;
      weight: number | undefined;
      /** GET <url>/health must answer with this id before the node enters the layout. */
      check: boolean;
    }
  | {
      name: 'set';
      id: string;
      url: string | undefined;
      zone: string | undefined;
      weight: number | undefined;
    }
  | { name: 'drain' | 'undrain'; id: string }
  | {
      name: 'remove';
      id: string;
      /** Remove a node that does not answer (its replica rows must still be 0). */
      force: boolean;
    };

export const USAGE = `usage: npm run cluster -- <command>

  show [--json]                 the layout: version, nodes (replica rows on each),
                                zones, warnings, and the last versions' notes
  add <id> --url <http://host:port> [--zone <zone>] [--weight <w>] [--no-check]
                                a new node (zone: its id, weight: 1 by default);
                                its GET /health must answer with <id> unless --no-check
  set <id> [--url <u>] [--zone <z>] [--weight <w>]
                                change a node's url, zone or weight
  drain <id>                    take a node out of placement: the rebalance moves its
                                data to the others while it keeps serving it
  undrain <id>                  put a draining node back into placement
  remove <id> [--force]         drop a drained node: it must be draining, have no
                                replica rows left, and report 0 objects in GET /health
                                (--force: remove it even though it does not answer)

The metadata store is the one the services use (DATABASE_URL, else DB_PATH, from
the environment or .env); on a store without a layout, NODES seeds version 1.
Exit code: 0 done; 2 refused (usage, or a change the layout or the node does not
allow; the message says why); 1 failed. See docs/layout.md.`;

export { UsageError };

const string = { type: 'string' } as const;
const bool = { type: 'boolean', default: false } as const;

/** `--url` as a node address: http(s)://host:port, reachable by the check. */
function urlFlag(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!URL.canParse(text) || !/^https?:\/\/[^/]/.test(text)) {
    throw new UsageError(`--url: "${text}" is not http(s)://host:port`);
  }
  return text.replace(/\/+$/, '');
}

/** `--weight` as a share of the data: a number above 0 (e.g. 2, or 0.5). */
function weightFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const weight = Number(text);
  if (text.trim() === '' || !Number.isFinite(weight) || weight <= 0 || weight > MAX_WEIGHT) {
    throw new UsageError(`--weight: "${text}" is not a number above 0 and at most ${MAX_WEIGHT}`);
  }
  return weight;
}

/** The one node id a command takes after its name. */
function nodeId(command: string, words: string[]): string {
  if (words.length !== 1) {
    throw new UsageError(
      words.length === 0
        ? `${command}: which node? (${command} <id>)`
        : `${command}: one node id, not ${words.length} (${words.join(' ')})`,
    );
  }
  return words[0]!;
}

export function parseClusterCommand(argv: string[]): ClusterCommand | 'help' {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError('a command is needed');
  if (name === 'help' || name === '--help' || name === '-h') return 'help';
  switch (name) {
    case 'show': {
      const { values, words } = parseFlagsAndWords(rest, { json: bool });
      if (words.length > 0) throw new UsageError(`show: unexpected ${words.join(' ')}`);
      return { name, json: values.json };
    }
    case 'add': {
      const { values, words } = parseFlagsAndWords(rest, {
        url: string,
        zone: string,
        weight: string,
        'no-check': bool,
      });
      const id = nodeId(name, words);
      const url = urlFlag(values.url);
      if (url === undefined) throw new UsageError('add: --url <http://host:port> is required');
      const weight = weightFlag(values.weight);
      return { name, id, url, zone: values.zone, weight, check: !values['no-check'] };
    }
    case 'set': {
      const { values, words } = parseFlagsAndWords(rest, {
        url: string,
        zone: string,
        weight: string,
      });
      const id = nodeId(name, words);
      const settings = {
        url: urlFlag(values.url),
        zone: values.zone,
        weight: weightFlag(values.weight),
      };
      if (Object.values(settings).every((v) => v === undefined)) {
        throw new UsageError('set: give at least one of --url, --zone, --weight');
      }
      return { name, id, ...settings };
    }
    case 'drain':
    case 'undrain': {
      const { words } = parseFlagsAndWords(rest, {});
      return { name, id: nodeId(name, words) };
    }
    case 'remove': {
      const { values, words } = parseFlagsAndWords(rest, { force: bool });
      return { name, id: nodeId(name, words), force: values.force };
    }
    default:
      throw new UsageError(`unknown command "${name}"`);
  }
}

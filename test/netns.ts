/**
 * A private network for one test file: hosts that share nothing but the
 * network, each a Linux network namespace, so partitions are real.
 *
 *   root namespace ── bridge (10.a.b.1/24) ─┬─ veth ── host h1 (10.a.b.11, eth0, lo)
 *   (gateway, worker,                       ├─ veth ── host h2 (10.a.b.12)
 *    Redis, RabbitMQ, PostgreSQL)           └─ veth ── host h3 (10.a.b.13)
 *
 * A host has no default route: it reaches the other hosts and the root
 * namespace's bridge address, nothing else (its 127.0.0.1 is its own). Every
 * name has a random suffix and the /24 is picked at random among those no
 * route of the machine overlaps, so two runs never collide.
 *
 * Faults:
 * - `cut(h)`: the bridge's end of h's veth goes down, as if its cable were
 *   pulled at the switch. Its processes keep running; nobody reaches it (a
 *   connection hangs: packets vanish, nothing refuses them) and it reaches nobody.
 * - `cutBetween(a, b)`: one way. Connections a opens to b fail, while b→a and
 *   root→b still work (replies of a to b's connections pass). `drop` (the
 *   default) discards a's packets as they reach b, so a's connections hang as
 *   behind a firewall; `reject` refuses them in a at once (ENETUNREACH). Both
 *   are policy-routing rules (`ip rule`) on TCP and UDP, as `tc netem` and
 *   iptables are not to be had (ICMP passes; so does ARP, or the hosts would
 *   stop resolving each other): a reply is told from a new connection by its destination port,
 *   which is in the receiver's ephemeral range. So anything listening in a
 *   host must use a port below `ephemeralLow` (32768): the harness's nodes
 *   listen on 9001.
 *
 * Bridged frames go through iptables when br_netfilter is loaded
 * (bridge-nf-call-iptables): on a machine whose FORWARD policy drops (Docker
 * sets one), hosts would not reach each other, and the sanity tests say so.
 *
 * Needs root and iproute2 (`ip netns`, veth, bridge): without them,
 * createNetwork throws an Error that says what is missing, so the tests that
 * need it fail rather than skip. `destroy()` removes everything (it is also
 * run when the process exits); a network left by a run killed outright is
 * removed by the next createNetwork once nothing runs in it.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';
import { delimiter, join } from 'node:path';

export interface NetnsHost {
  /** h1, h2, …: what a test calls it. */
  name: string;
  /** Its network namespace (`ip netns exec <namespace> …`). */
  namespace: string;
  /** Its IPv4 address on the bridge. */
  address: string;
}

/** A host, or its name. */
export type HostRef = NetnsHost | string;

/** How `cutBetween` stops a→b: packets dropped on arrival (connections hang), or refused at the sender. */
export type CutMode = 'drop' | 'reject';

export interface Network {
  /** The bridge in the root namespace. */
  bridge: string;
  /** The root namespace's address on the bridge: the one address of it the hosts reach. */
  bridgeAddress: string;
  /** The /24 of the network, e.g. 10.123.45.0/24. */
  subnet: string;
  hosts: NetnsHost[];
  /** Below this port a host's listener is reachable through a `cutBetween` in the other direction. */
  ephemeralLow: number;
  host(ref: HostRef): NetnsHost;
  /** Runs a command inside a host; resolves with its stdout, rejects (with its stderr) when it fails. */
  exec(host: HostRef, ...cmd: string[]): Promise<string>;
  /** Spawns a command inside a host (`ip netns exec` execs it: the child's pid is the command's). */
  spawn(host: HostRef, command: string, args?: string[], options?: SpawnOptions): ChildProcess;
  /** The host's link goes down: it keeps running, but it and the rest cannot reach each other. */
  cut(host: HostRef): void;
  heal(host: HostRef): void;
  /** Packets from `from` to `to` stop (one way: `to` still reaches `from`, the root still reaches both). */
  cutBetween(from: HostRef, to: HostRef, mode?: CutMode): void;
  healBetween(from: HostRef, to: HostRef): void;
  /** Kills what runs in the hosts and removes every namespace, link and the bridge; idempotent. */
  destroy(): void;
}

export interface NetworkOptions {
  /** Start of the namespaces' names (default `trove`); a test of the error path gives a bad one. */
  namespacePrefix?: string;
}

const NEEDS = 'the netns tests need root and iproute2 (ip netns, veth and bridge links)';
/** Where the rules of `cutBetween` go, before the `local` lookup (moved from 0 to LOCAL_PREF). */
const CUT_PREF = 1000;
const LOCAL_PREF = 10_000;

/** The argv that runs `command` inside `namespace`; `ip netns exec` execs it, keeping the pid. */
export function netnsCommand(
  namespace: string,
  command: string,
  args: string[] = [],
): { command: string; args: string[] } {
  return { command: ipPath(), args: ['netns', 'exec', namespace, command, ...args] };
}

let ipBinary: string | undefined;

/** iproute2's `ip`: on PATH, or in /usr/sbin or /sbin (often not on a user's PATH). */
function ipPath(): string {
  if (ipBinary) return ipBinary;
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    try {
      accessSync(join(dir, 'ip'), constants.X_OK);
      return (ipBinary = join(dir, 'ip'));
    } catch {
      // next
    }
  }
  throw new Error(`iproute2's ip command was not found (PATH, /usr/sbin, /sbin): ${NEEDS}`);
}

function ip(...args: string[]): string {
  return execFileSync(ipPath(), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `ip …` ignoring failure (removing what may be gone already). */
function ipQuiet(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    // already gone
  }
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string | Buffer; message?: string };
  return String(e.stderr ?? '').trim() || (e.message ?? String(err));
}

const live = new Set<Network>();
let exitHook = false;

/** Namespaces `trove-<pid>-<suffix>-h<i>` of a process that is gone and with nothing running in them. */
function sweepStale(): void {
  let list: string;
  try {
    list = ip('netns', 'list');
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const m = /^(trove-(\d+)-([0-9a-f]{6})-h(\d+))\b/.exec(line.trim());
    if (!m) continue;
    const [, namespace, pid, suffix, index] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
    ];
    if (isAlive(Number(pid))) continue;
    try {
      if (ip('netns', 'pids', namespace).trim() !== '') continue; // something still runs there
    } catch {
      continue;
    }
    ipQuiet('netns', 'del', namespace);
    ipQuiet('link', 'del', `trv${suffix}h${index}`);
    ipQuiet('link', 'del', `trb${suffix}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Cidr {
  base: number;
  bits: number;
}

function parseCidr(text: string): Cidr | undefined {
  const [addr, bits] = text.split('/');
  const parts = addr!.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) return undefined;
  const base = parts.reduce((acc, p) => acc * 256 + p, 0);
  return { base, bits: bits === undefined ? 32 : Number(bits) };
}

function overlaps(a: Cidr, b: Cidr): boolean {
  const bits = Math.min(a.bits, b.bits);
  const size = 2 ** (32 - bits);
  return Math.floor(a.base / size) === Math.floor(b.base / size);
}

/** A random 10.a.b.0/24 that no route or address of the root namespace overlaps. */
function pickSubnet(): string {
  const taken: Cidr[] = [];
  const routes = JSON.parse(ip('-j', '-4', 'route', 'show', 'table', 'all')) as { dst: string }[];
  for (const r of routes) {
    const c = r.dst && r.dst !== 'default' ? parseCidr(r.dst) : undefined;
    if (c) taken.push(c);
  }
  const addrs = JSON.parse(ip('-j', '-4', 'addr')) as {
    addr_info?: { local: string; prefixlen: number }[];
  }[];
  for (const link of addrs)
    for (const a of link.addr_info ?? []) {
      const c = parseCidr(`${a.local}/${a.prefixlen}`);
      if (c) taken.push(c);
    }
  for (let attempt = 0; attempt < 100; attempt++) {
    const subnet = `10.${randomInt(64, 255)}.${randomInt(0, 256)}.0/24`;
    const c = parseCidr(subnet)!;
    if (!taken.some((t) => overlaps(t, c))) return subnet;
  }
  throw new Error('no free 10.x.y.0/24 found for the test network');
}

/**
 * Creates a bridge and `hosts` namespaces on it. Throws, having removed what
 * it made, with what is missing when it cannot (not root, no iproute2).
 */
export function createNetwork(hosts: number, opts: NetworkOptions = {}): Network {
  if (process.platform !== 'linux')
    throw new Error(`network namespaces are Linux only (this is ${process.platform}): ${NEEDS}`);
  ipPath();
  if (process.getuid?.() !== 0)
    throw new Error(
      `creating network namespaces needs root (uid is ${process.getuid?.()}): ${NEEDS}`,
    );
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > 200)
    throw new Error(`a test network has 1-200 hosts, not ${hosts}`);
  sweepStale();

  const suffix = randomBytes(3).toString('hex');
  const prefix = opts.namespacePrefix ?? 'trove';
  const subnet = pickSubnet();
  const net3 = subnet.split('.').slice(0, 3).join('.');
  const bridge = `trb${suffix}`;
  const bridgeAddress = `${net3}.1`;
  const list: (NetnsHost & { veth: string })[] = Array.from({ length: hosts }, (_, i) => ({
    name: `h${i + 1}`,
    namespace: `${prefix}-${process.pid}-${suffix}-h${i + 1}`,
    address: `${net3}.${11 + i}`,
    veth: `trv${suffix}h${i + 1}`,
  }));
  /** cutBetween rules in force: `from>to` → the `ip rule` selectors to delete on heal. */
  const cuts = new Map<string, { namespace: string; rules: string[][] }>();
  const made = { bridge: false, namespaces: [] as string[] };
  let destroyed = false;
  let ephemeralLow = 32768;
  let ephemeralHigh = 60999;

  const step = (what: string, ...args: string[]) => {
    try {
      return ip(...args);
    } catch (err) {
      throw new Error(
        `cannot create the test network: ${what} failed (ip ${args.join(' ')}): ${stderrOf(err)}; ${NEEDS}`,
      );
    }
  };

  const network: Network = {
    bridge,
    bridgeAddress,
    subnet,
    hosts: list.map(({ name, namespace, address }) => ({ name, namespace, address })),
    get ephemeralLow() {
      return ephemeralLow;
    },
    host(ref) {
      const name = typeof ref === 'string' ? ref : ref.name;
      const found = list.find((h) => h.name === name || h.namespace === name);
      if (!found) throw new Error(`no host ${name} in this network`);
      return { name: found.name, namespace: found.namespace, address: found.address };
    },
    exec(ref, ...cmd) {
      const { command, args } = netnsCommand(network.host(ref).namespace, cmd[0]!, cmd.slice(1));
      return new Promise((done, fail) => {
        execFileChild(command, args, (err, stdout) => (err ? fail(err) : done(stdout)));
      });
    },
    spawn(ref, command, args = [], options = {}) {
      const argv = netnsCommand(network.host(ref).namespace, command, args);
      return spawn(argv.command, argv.args, options);
    },
    cut(ref) {
      ip('link', 'set', vethOf(ref), 'down');
    },
    heal(ref) {
      ip('link', 'set', vethOf(ref), 'up');
    },
    cutBetween(fromRef, toRef, mode = 'drop') {
      const from = network.host(fromRef);
      const to = network.host(toRef);
      if (from.name === to.name) throw new Error('cutBetween needs two hosts');
      const key = `${from.name}>${to.name}`;
      if (cuts.has(key)) network.healBetween(from, to);
      // A reply goes to the ephemeral port of the connection's opener; the rest is a's own traffic.
      // TCP and UDP only: ARP's own route check has no protocol, so it passes, and the two
      // hosts keep resolving each other (else b's connections to a would fail too). ICMP passes.
      const replies = `${ephemeralLow}-${ephemeralHigh}`;
      const index = (h: NetnsHost) => list.findIndex((x) => x.name === h.name);
      // In `to`, on arrival (drop), or in `from`, on sending (reject).
      const [namespace, other, selector, allow, block] =
        mode === 'drop'
          ? [to.namespace, from, ['iif', 'eth0', 'from', from.address], 'local', 'blackhole']
          : [from.namespace, to, ['to', to.address], 'main', 'unreachable'];
      const base = CUT_PREF + (mode === 'drop' ? 0 : 5000) + 10 * index(other);
      const rules = ['tcp', 'udp'].flatMap((proto, i) => [
        [
          'pref',
          String(base + 2 * i),
          ...selector,
          'ipproto',
          proto,
          'dport',
          replies,
          'lookup',
          allow,
        ],
        ['pref', String(base + 2 * i + 1), ...selector, 'ipproto', proto, block],
      ]);
      const added: string[][] = [];
      try {
        for (const rule of rules) {
          ip('-n', namespace, 'rule', 'add', ...rule);
          added.push(rule);
        }
      } catch (err) {
        for (const rule of added) ipQuiet('-n', namespace, 'rule', 'del', ...rule);
        throw err;
      }
      cuts.set(key, { namespace, rules: added });
    },
    healBetween(fromRef, toRef) {
      const key = `${network.host(fromRef).name}>${network.host(toRef).name}`;
      const cut = cuts.get(key);
      if (!cut) return;
      for (const rule of cut.rules) ipQuiet('-n', cut.namespace, 'rule', 'del', ...rule);
      cuts.delete(key);
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(network);
      for (const namespace of made.namespaces) {
        // Whatever a test started in the host (a namespace lives on while a process is in it).
        let pids: string[] = [];
        try {
          pids = ip('netns', 'pids', namespace).split('\n').filter(Boolean);
        } catch {
          // gone
        }
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // exited meanwhile
          }
        }
        ipQuiet('netns', 'del', namespace);
      }
      for (const h of list) ipQuiet('link', 'del', h.veth);
      if (made.bridge) ipQuiet('link', 'del', bridge);
    },
  };

  function vethOf(ref: HostRef): string {
    const { name } = network.host(ref);
    return list.find((h) => h.name === name)!.veth;
  }

  live.add(network);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const n of [...live]) n.destroy();
    });
  }

  try {
    step('creating the bridge', 'link', 'add', bridge, 'type', 'bridge');
    made.bridge = true;
    step('addressing the bridge', 'addr', 'add', `${bridgeAddress}/24`, 'dev', bridge);
    step('starting the bridge', 'link', 'set', bridge, 'up');
    for (const h of list) {
      try {
        ip('netns', 'add', h.namespace);
      } catch (err) {
        throw new Error(
          `cannot create network namespace "${h.namespace}" (ip netns add): ${stderrOf(err)}; ${NEEDS}`,
        );
      }
      made.namespaces.push(h.namespace);
      const ns = ['-n', h.namespace];
      const peer = `trp${suffix}h${h.name.slice(1)}`;
      step(
        `a veth pair for ${h.name}`,
        'link',
        'add',
        h.veth,
        'type',
        'veth',
        'peer',
        'name',
        peer,
        'netns',
        h.namespace,
      );
      step(`naming ${h.name}'s interface`, ...ns, 'link', 'set', peer, 'name', 'eth0');
      step(`addressing ${h.name}`, ...ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0');
      step(`${h.name}'s loopback`, ...ns, 'link', 'set', 'lo', 'up');
      step(`${h.name}'s link`, ...ns, 'link', 'set', 'eth0', 'up');
      // The `local` lookup after the rules of cutBetween, which must see packets first.
      step(
        `${h.name}'s rules`,
        ...ns,
        'rule',
        'add',
        'pref',
        String(LOCAL_PREF),
        'lookup',
        'local',
      );
      step(`${h.name}'s rules`, ...ns, 'rule', 'del', 'pref', '0', 'lookup', 'local');
      step(`attaching ${h.name}`, 'link', 'set', h.veth, 'master', bridge);
      step(`attaching ${h.name}`, 'link', 'set', h.veth, 'up');
    }
    // A new namespace's ephemeral ports are the kernel's default; read them, every host alike.
    const range = execFileSync(
      ipPath(),
      ['netns', 'exec', list[0]!.namespace, 'cat', '/proc/sys/net/ipv4/ip_local_port_range'],
      { encoding: 'utf8' },
    )
      .trim()
      .split(/\s+/)
      .map(Number);
    [ephemeralLow, ephemeralHigh] = [range[0] ?? 32768, range[1] ?? 60999];
  } catch (err) {
    network.destroy();
    throw err;
  }
  return network;
}

/** execFile with stdout, and stderr in the error. */
function execFileChild(
  command: string,
  args: string[],
  done: (err: Error | undefined, stdout: string) => void,
): void {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.once('error', (err) => done(err, stdout));
  child.once('close', (code, signal) =>
    done(
      code === 0
        ? undefined
        : Object.assign(
            new Error(`${args.slice(3).join(' ')} exited ${code ?? signal}: ${stderr.trim()}`),
            { stdout, stderr, code },
          ),
      stdout,
    ),
  );
}

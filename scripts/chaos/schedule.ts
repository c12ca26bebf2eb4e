/**
 * The fault schedule, drawn from the seed alone: the same seed and duration
 * give the same faults at the same offsets, whatever the machine does, so a
 * failing run can be replayed. (The traffic's timing is the machine's; the
 * schedule is not.)
 *
 * Kinds are drawn from a shuffled bag, so every kind comes once before any
 * comes twice; at most MAX_CONCURRENT faults are active at a time, never two
 * on one target, and never both gateways at once (clients must have somewhere
 * to go for the history to say anything).
 */
import { Random } from './random.js';

export const FAULT_KINDS = [
  'kill',
  'pause',
  'cut',
  'cut-one-way',
  'redis-restart',
  'redis-flushall',
  'amqp-close',
  'postgres-restart',
  'disk-full',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a fault can hit: process names (`node1`, `gw1`, `worker1`). */
export interface Targets {
  nodes: string[];
  gateways: string[];
  workers: string[];
}

export interface PlannedFault {
  /** Offset from the start of the traffic, ms. */
  at: number;
  kind: FaultKind;
  /** A process, a node (cut, disk-full, the sender of cut-one-way), or `redis` / `rabbitmq` / `postgres`. */
  target: string;
  /** cut-one-way: the node whose incoming packets from `target` are dropped. */
  peer?: string;
  /** How long until it is healed; 0 for an instant fault (FLUSHALL, connections closed). */
  durationMs: number;
}

export const MAX_CONCURRENT = 2;
/** Traffic runs this long before the first fault, so there are files to lose. */
export const WARMUP_MS = 3000;

/** [min, max] duration of each kind, ms. A pause outlasts every lock's TTL (5 s downloads, 10 s blobs). */
const DURATION: Record<FaultKind, [number, number]> = {
  kill: [2000, 7000],
  pause: [11_000, 13_000],
  cut: [3000, 8000],
  'cut-one-way': [3000, 8000],
  'redis-restart': [1000, 4000],
  'redis-flushall': [0, 0],
  'amqp-close': [0, 0],
  'postgres-restart': [1000, 4000],
  'disk-full': [4000, 9000],
};

const SERVICE: Partial<Record<FaultKind, string>> = {
  'redis-restart': 'redis',
  'redis-flushall': 'redis',
  'amqp-close': 'rabbitmq',
  'postgres-restart': 'postgres',
};

/** Which resources a fault holds while active (two faults never share one). */
function holds(f: PlannedFault): string[] {
  return f.peer ? [f.target, f.peer] : [f.target];
}

function candidates(
  kind: FaultKind,
  targets: Targets,
  rng: Random,
): { target: string; peer?: string }[] {
  const service = SERVICE[kind];
  if (service) return [{ target: service }];
  switch (kind) {
    case 'kill':
    case 'pause':
      return rng
        .shuffle([...targets.nodes, ...targets.gateways, ...targets.workers])
        .map((target) => ({ target }));
    case 'cut-one-way':
      return rng
        .shuffle(
          targets.nodes.flatMap((a) => targets.nodes.filter((b) => b !== a).map((b) => [a, b])),
        )
        .map(([target, peer]) => ({ target: target!, peer: peer! }));
    default:
      return rng.shuffle(targets.nodes).map((target) => ({ target }));
  }
}

/** Whether `f` may start while `active` are: no shared resource, a gateway always left alone. */
function fits(f: PlannedFault, active: PlannedFault[], targets: Targets): boolean {
  if (active.length >= MAX_CONCURRENT) return false;
  const busy = new Set(active.flatMap(holds));
  if (holds(f).some((r) => busy.has(r))) return false;
  const gateways = new Set(
    [...active, f].map((a) => a.target).filter((t) => targets.gateways.includes(t)),
  );
  return gateways.size < targets.gateways.length;
}

/** The faults of a run of `durationMs`, in order of `at`; every one healed before the end. */
export function planFaults(seed: number, durationMs: number, targets: Targets): PlannedFault[] {
  const rng = Random.of(seed, 0);
  const plan: PlannedFault[] = [];
  const end = durationMs - 1000;
  let bag: FaultKind[] = [];
  let t = WARMUP_MS;
  while (t < end) {
    if (bag.length === 0) bag = rng.shuffle(FAULT_KINDS);
    const kind = bag.pop()!;
    const [min, max] = DURATION[kind];
    const durationMs = Math.min(rng.int(min, max), end - t);
    const active = plan.filter((f) => f.at <= t && t < f.at + Math.max(f.durationMs, 1));
    const choice = candidates(kind, targets, rng)
      .map((c) => ({ at: t, kind, ...c, durationMs }))
      .find((f) => fits(f, active, targets));
    if (!choice || durationMs < min) {
      // Nothing free for it now (or too little time left): try it again once a fault ends.
      bag.push(kind);
      const ends = active.map((f) => f.at + f.durationMs).filter((e) => e > t);
      if (ends.length === 0) break;
      t = Math.min(...ends);
      continue;
    }
    plan.push(choice);
    t += rng.int(1500, 4500);
  }
  return plan;
}

/** One line per fault, for `--plan` and the report. */
export function describeFault(f: PlannedFault): string {
  const what = f.peer ? `${f.target} → ${f.peer}` : f.target;
  const span = f.durationMs > 0 ? ` for ${(f.durationMs / 1000).toFixed(1)} s` : '';
  return `+${(f.at / 1000).toFixed(1).padStart(5)} s  ${f.kind.padEnd(16)} ${what}${span}`;
}

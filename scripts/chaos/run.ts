/**
 * One chaos run: the lab up, clients recording a history while the seed's
 * faults come and go, everything healed, full redundancy waited for, every
 * acknowledged file read once more, the final state read, and the checker
 * run over it all.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { checkHistory, type CheckResult } from './checker.js';
import { Contents } from './content.js';
import { FaultInjector } from './faults.js';
import { finalState, readFinalFiles, underReplicated } from './final-state.js';
import { HistoryLog, type FaultRecord, type FinalState, type Op } from './history.js';
import { startLab, type Lab } from './lab.js';
import { planFaults, type PlannedFault } from './schedule.js';
import { Traffic } from './traffic.js';

/** How far the gateways' clocks may be from the clients' (docs/chaos.md): all run on one machine here. */
export const CLOCK_SLACK_MS = 1000;
/**
 * Longest wait for full redundancy after healing: one repair sweep period
 * (REPAIR_SCHEDULE, every 5 min) and a margin, the bound Trove promises for a
 * repair whose every trigger was lost (a request made while RabbitMQ was
 * unreachable); the report shows how long it took.
 */
const REDUNDANCY_TIMEOUT_MS = 330_000;

export interface RunOptions {
  seed: number;
  durationMs: number;
  clients: number;
  save: string | undefined;
  log: (msg: string) => void;
}

/** A process that exited without the drill killing it. */
export interface Crash {
  name: string;
  at: number;
  exit: string;
}

export interface ChaosResult {
  seed: number;
  durationMs: number;
  startedAt: number;
  plan: PlannedFault[];
  faults: FaultRecord[];
  crashes: Crash[];
  history: Op[];
  final: FinalState;
  results: CheckResult[];
  savedTo: string;
  /** Where the processes' logs were kept. */
  logs?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runChaos(opts: RunOptions): Promise<ChaosResult> {
  const { log } = opts;
  const lab = await startLab(log);
  const dispatcher = new Agent({ connections: 32, keepAliveTimeout: 4000 });
  try {
    const plan = planFaults(opts.seed, opts.durationMs, lab.targets);
    const history = new HistoryLog();
    const contents = new Contents(opts.seed);
    const traffic = new Traffic({
      history,
      contents,
      gateways: [...lab.gateways.values()],
      seed: opts.seed,
      dispatcher,
    });
    const injector = new FaultInjector(lab, log);
    const crashes: Crash[] = [];
    const watchdog = watchProcesses(lab, injector, crashes, log);

    const startedAt = Date.now();
    log(`traffic and ${plan.length} faults for ${opts.durationMs / 1000} s (seed ${opts.seed})`);
    traffic.start(opts.clients);
    // Each fault on its own timeline: a slow one (rabbitmqctl takes seconds) delays no other.
    const faults = plan.map(async (fault) => {
      await sleep(startedAt + fault.at - Date.now());
      const active = await injector.inject(fault);
      if (!active) return;
      await sleep(startedAt + fault.at + fault.durationMs - Date.now());
      await injector.heal(active);
    });
    await sleep(startedAt + opts.durationMs - Date.now());
    await traffic.stop();
    await Promise.all(faults);
    await injector.healAll();
    await watchdog.stop();
    await ensureRunning(lab, injector);
    const healedAt = Date.now();
    log(`healed; ${history.ops.length} operations; waiting for full redundancy`);

    const redundantAt = await waitForRedundancy(lab, log);
    log('reading every acknowledged file once more');
    await finalReads(traffic, [...lab.gateways.values()]);
    const final = finalState(await readFinalFiles(lab, true), healedAt, redundantAt);
    const results = check(opts.seed, history.ops, final);
    const savedTo = opts.save ?? join(tmpdir(), `trove-chaos-${opts.seed}-${startedAt}.json`);
    const result = {
      seed: opts.seed,
      durationMs: opts.durationMs,
      startedAt,
      plan,
      faults: injector.records,
      crashes,
      history: history.ops,
      final,
      results,
      savedTo,
    };
    await writeFile(savedTo, JSON.stringify(result));
    // The processes' logs, beside the history (the lab's directory goes).
    const logs = `${savedTo.replace(/\.json$/, '')}-logs`;
    await cp(join(lab.cluster.dir, 'logs'), logs, { recursive: true });
    return { ...result, logs };
  } finally {
    await dispatcher.close().catch(() => undefined);
    await lab.close();
  }
}

/** The checker over a history whose contents come from `seed`. */
export function check(seed: number, history: Op[], final: FinalState): CheckResult[] {
  const contents = new Contents(seed);
  return checkHistory(history, final, {
    clockSlackMs: CLOCK_SLACK_MS,
    contentDigest: (key, start, end) => contents.digest(key, start, end),
  });
}

/** A saved run (`--save`) checked again, with this version of the checker. */
export async function recheck(file: string): Promise<ChaosResult> {
  const saved = JSON.parse(await readFile(file, 'utf8')) as ChaosResult;
  return { ...saved, results: check(saved.seed, saved.history, saved.final), savedTo: file };
}

/** Starts whatever is not running (a crash the watchdog could not restart then), retrying for 60 s. */
async function ensureRunning(lab: Lab, injector: FaultInjector): Promise<void> {
  const names = [...lab.targets.nodes, ...lab.targets.gateways, ...lab.targets.workers];
  const deadline = Date.now() + 60_000;
  for (const name of names) {
    for (;;) {
      try {
        await injector.restart(name);
        break;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`${name} does not start: ${(err as Error).message}`);
        await sleep(1000);
      }
    }
  }
}

/** Polls the final state until every live file is fully replicated; when that was, or undefined. */
async function waitForRedundancy(
  lab: Lab,
  log: (msg: string) => void,
): Promise<number | undefined> {
  const deadline = Date.now() + REDUNDANCY_TIMEOUT_MS;
  let short = -1;
  while (Date.now() < deadline) {
    const files = await readFinalFiles(lab, false).catch(() => undefined);
    const missing = files && underReplicated(files);
    if (missing && missing.length === 0) return Date.now();
    if (missing && missing.length !== short) {
      short = missing.length;
      log(`${short} live files short of a copy`);
    }
    await sleep(1000);
  }
  return undefined;
}

/** One whole-file download of every file not deleted, spread over the gateways, 8 at a time. */
async function finalReads(traffic: Traffic, gateways: string[]): Promise<void> {
  const files = traffic.files.filter((f) => !f.deleted);
  let next = 0;
  const reader = async () => {
    for (let i = next++; i < files.length; i = next++)
      await traffic.download(
        'final',
        files[i]!,
        gateways[i % gateways.length]!,
        undefined,
        'final',
      );
  };
  await Promise.all(Array.from({ length: 8 }, reader));
}

/**
 * Every half second: a process that exited though the drill did not kill it
 * crashed. It is recorded (a check of its own) and started again, as a
 * supervisor would, so the run goes on.
 */
function watchProcesses(
  lab: Lab,
  injector: FaultInjector,
  crashes: Crash[],
  log: (msg: string) => void,
): { stop(): Promise<void> } {
  const names = [...lab.targets.nodes, ...lab.targets.gateways, ...lab.targets.workers];
  const seen = new Set<number>();
  let busy: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    busy = busy.then(async () => {
      for (const name of names) {
        const proc = lab.cluster.proc(name)?.proc;
        if (!proc?.pid || (proc.exitCode === null && proc.signalCode === null)) continue;
        if (injector.killedPids.has(proc.pid) || seen.has(proc.pid)) continue;
        seen.add(proc.pid);
        crashes.push({ name, at: Date.now(), exit: String(proc.exitCode ?? proc.signalCode) });
        log(`${name} crashed (exit ${proc.exitCode ?? proc.signalCode}): starting it again`);
        await injector
          .restart(name)
          .catch((err: Error) => log(`restart of ${name}: ${err.message}`));
      }
    });
  }, 500);
  return {
    async stop() {
      clearInterval(timer);
      await busy;
    },
  };
}

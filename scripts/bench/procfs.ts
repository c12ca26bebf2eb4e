/**
 * What the bench reads about other processes, from Linux /proc: resident
 * memory (sampled, since VmHWM is a lifetime peak and says nothing about one
 * phase) and CPU time (to tell where a run's CPU went).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** A process the bench watches, by role ("gateway", "node1", "nginx"…). */
export interface Watched {
  name: string;
  pid: number;
}

/** Current VmRSS in bytes; undefined once the process is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond =
        Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100; // the value on every Linux the bench is likely to meet
    }
  }
  return ticksPerSecond;
}

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds the process has used so far; 0 if it is gone. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  // After the name: state, ppid, … utime is field 14 of the file, so index 11 here; stime follows.
  return f ? (Number(f[11]) + Number(f[12])) / clockTicks() : 0;
}

/**
 * User + system CPU seconds of this process's children that have exited and
 * been waited for (cutime + cstime): what a batch of short-lived commands cost.
 */
export function exitedChildrenCpuSeconds(): number {
  const f = statFields(process.pid);
  // cutime and cstime are fields 16 and 17 of the file, so indexes 13 and 14 here.
  return f ? (Number(f[13]) + Number(f[14])) / clockTicks() : 0;
}

export function isAlive(pid: number): boolean {
  return statFields(pid) !== undefined;
}

/** The command line of a process, space-joined; '' if it is gone. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Direct children of `pid` (nginx's workers), found by scanning /proc for their parent. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === pid) children.push(Number(entry));
  }
  return children;
}

/** The processes `pids` answers, all under one name (nginx's master and workers as "nginx"). */
export function named(name: string, pids: () => number[]): () => Watched[] {
  return () => pids().map((pid) => ({ name, pid }));
}

/** CPU seconds between `start()` and `stop()`. */
export interface CpuUse {
  /** The watched processes together. */
  serverS: number;
  /** This process: the load client. */
  clientS: number;
  /** Each watched process by name (processes sharing a name are summed). */
  byProcess: Record<string, number>;
}

/** CPU used by a set of processes between `start()` and `stop()`, per process and in total. */
export class CpuMeter {
  private startByName = new Map<string, number>();
  private startClient = process.cpuUsage();

  constructor(private readonly watched: () => Watched[]) {}

  start(): void {
    this.startByName = this.byName();
    this.startClient = process.cpuUsage();
  }

  stop(): CpuUse {
    const client = process.cpuUsage(this.startClient);
    const byProcess: Record<string, number> = {};
    // A process gone by now (a killed node) drops out rather than counting negative.
    for (const [name, s] of this.byName()) byProcess[name] = s - (this.startByName.get(name) ?? 0);
    return {
      serverS: Object.values(byProcess).reduce((sum, s) => sum + s, 0),
      clientS: (client.user + client.system) / 1e6,
      byProcess,
    };
  }

  private byName(): Map<string, number> {
    const seconds = new Map<string, number>();
    for (const { name, pid } of this.watched())
      seconds.set(name, (seconds.get(name) ?? 0) + cpuSeconds(pid));
    return seconds;
  }
}

/** `run`, and the CPU the watched processes and this one used meanwhile. */
export async function metered<T>(
  watched: () => Watched[],
  run: () => Promise<T>,
): Promise<{ result: T; cpu: CpuUse }> {
  const meter = new CpuMeter(watched);
  meter.start();
  const result = await run();
  return { result, cpu: meter.stop() };
}

/** The CPU of several measured spans together. */
export function addCpu(a: CpuUse, b: CpuUse): CpuUse {
  const byProcess = { ...a.byProcess };
  for (const [name, s] of Object.entries(b.byProcess)) byProcess[name] = (byProcess[name] ?? 0) + s;
  return { serverS: a.serverS + b.serverS, clientS: a.clientS + b.clientS, byProcess };
}

/** CPU per unit of work (a request, a MB), in ms: `use` divided by `units`. */
export interface CpuCost {
  server: number;
  client: number;
  byProcess: Record<string, number>;
}

export function costPer(use: CpuUse, units: number): CpuCost {
  const ms = (s: number) => (units > 0 ? (s * 1000) / units : 0);
  return {
    server: ms(use.serverS),
    client: ms(use.clientS),
    byProcess: Object.fromEntries(Object.entries(use.byProcess).map(([n, s]) => [n, ms(s)])),
  };
}

/** The process's scheduler state: 'R' running, 'S' sleeping, 'T' stopped (SIGSTOP)…; undefined if gone. */
export function processState(pid: number): string | undefined {
  return statFields(pid)?.[0];
}

/**
 * Samples VmRSS of every watched process at a fixed interval and keeps the
 * peak per process and per phase. Reading four small /proc files every 50 ms
 * costs the bench well under 1% of a core.
 */
export class RssSampler {
  private readonly peaks = new Map<string, Map<string, number>>();
  private readonly starts = new Map<string, Record<string, number>>();
  private phase = 'idle';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly watched: Watched[],
    private readonly intervalMs = 50,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  /** Later samples count towards `phase` (e.g. "large"). */
  setPhase(phase: string): void {
    this.sample();
    this.phase = phase;
    this.starts.set(phase, this.now());
    this.sample();
  }

  /** RSS in bytes per process name when `phase` began: what the phase's peak grew from. */
  startOf(phase: string): Record<string, number> {
    return this.starts.get(phase) ?? {};
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }

  /** RSS in bytes per process name, now. */
  now(): Record<string, number> {
    const now: Record<string, number> = {};
    for (const w of this.watched) {
      const rss = rssBytes(w.pid);
      if (rss !== undefined) now[w.name] = rss;
    }
    return now;
  }

  /** Peak RSS in bytes per process name over every phase so far. */
  peakOverall(): Record<string, number> {
    const peak: Record<string, number> = {};
    for (const phase of this.peaks.values())
      for (const [name, rss] of phase) peak[name] = Math.max(peak[name] ?? 0, rss);
    return peak;
  }

  /** Peak RSS in bytes per process name during `phase`. */
  peaksOf(phase: string): Record<string, number> {
    return Object.fromEntries(this.peaks.get(phase) ?? []);
  }

  /** Per phase: the RSS each process started it with, and its peak. */
  phases(): Record<string, { start: Record<string, number>; peak: Record<string, number> }> {
    return Object.fromEntries(
      [...this.peaks.keys()].map((p) => [p, { start: this.startOf(p), peak: this.peaksOf(p) }]),
    );
  }

  private sample(): void {
    let peaks = this.peaks.get(this.phase);
    if (!peaks) {
      peaks = new Map();
      this.peaks.set(this.phase, peaks);
    }
    for (const w of this.watched) {
      const rss = rssBytes(w.pid);
      if (rss !== undefined && rss > (peaks.get(w.name) ?? 0)) peaks.set(w.name, rss);
    }
  }
}

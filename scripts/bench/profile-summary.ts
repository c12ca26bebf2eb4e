/**
 * Top self-time frames of `node --cpu-prof` profiles, one block per process:
 * where each process's main thread spent its time during a bench run.
 *
 * usage: node --import tsx scripts/bench/profile-summary.ts <dir or .cpuprofile>… \
 *          [--top 20] [--requests <n>] [--name <pid>=<label>]… [--from <µs> --to <µs>]
 *
 *   --top <n>        frames listed per process (default 20)
 *   --requests <n>   requests served while profiling: adds µs of self time per request
 *   --name pid=label names a process (e.g. --name 4242=node1); otherwise the role is
 *                    guessed from the scripts it ran (gateway, storage-node, worker, start)
 *   --cpu name=ms    the process's CPU per request (from /proc; profile-load.ts prints it): the
 *                    µs/req column is then its share of the busy samples × that, rather than
 *                    the profile's wall time, which on shared cores includes waits for a core
 *   --from, --to     count only samples in this window, in µs of the system's monotonic clock
 *                    (the profiles' own clock; profile-load.ts prints the window of its load),
 *                    so start-up and shutdown stay out of the figures
 *
 * Self time is summed by function, file and line over the whole profile;
 * "busy" is the profile's time minus (idle), i.e. the main thread's work,
 * including (garbage collector) and (program) (V8 and native code outside JS).
 * A process paused with SIGSTOP shows its pause as busy time in the frame
 * it stopped in: profile a paused worker only to ignore it.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Frame {
  name: string;
  /** Microseconds of self time. */
  selfUs: number;
}

export interface ProfileSummary {
  file: string;
  pid: number | undefined;
  role: string;
  totalUs: number;
  idleUs: number;
  frames: Frame[];
  /** Self time by where the code lives: a package, node's internals, a project file. */
  modules: Frame[];
}

/** CPU.20261205.080102.4242.0.001.cpuprofile → 4242 */
function pidOf(file: string): number | undefined {
  const parts = basename(file).split('.');
  const pid = Number(parts[3]);
  return Number.isInteger(pid) ? pid : undefined;
}

function roleOf(urls: string[]): string {
  const has = (s: string) => urls.some((u) => u.includes(s));
  if (has('/gateway/main.')) return 'gateway';
  if (has('/storage-node/main.')) return 'storage-node';
  if (has('/worker/main.')) return 'worker';
  if (has('/scripts/start.')) return 'start';
  return 'unknown';
}

function shortUrl(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  const project = /\/(dist|gateway|storage-node|worker|shared|scripts)\//.exec(url);
  return project ? url.slice(project.index + 1) : url.replace(/^file:\/\//, '');
}

function moduleOf(url: string): string {
  if (!url) return '(no script: GC, native bindings, program)';
  if (url.startsWith('node:')) return 'node: internals';
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const [scope, name] = url.slice(nm + 'node_modules/'.length).split('/');
    return scope!.startsWith('@') ? `${scope}/${name}` : scope!;
  }
  return shortUrl(url);
}

/** Samples between `from` and `to` (µs, the profile's clock) count; all when they are undefined. */
export interface Window {
  from?: number;
  to?: number;
}

export function summarize(file: string, window: Window = {}): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<number, number>();
  // timeDeltas[i] is the time from sample i-1 to sample i: charge it to sample i-1's frame.
  let at = profile.startTime + (profile.timeDeltas[0] ?? 0);
  for (let i = 1; i < profile.samples.length; i++) {
    const sampledAt = at;
    at += profile.timeDeltas[i]!;
    if (sampledAt < (window.from ?? -Infinity) || sampledAt > (window.to ?? Infinity)) continue;
    const id = profile.samples[i - 1]!;
    self.set(id, (self.get(id) ?? 0) + profile.timeDeltas[i]!);
  }
  const frames = new Map<string, number>();
  const modules = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!;
    totalUs += us;
    if (f.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const where = f.url ? ` ${shortUrl(f.url)}:${f.lineNumber + 1}` : '';
    const name = `${f.functionName || '(anonymous)'}${where}`;
    frames.set(name, (frames.get(name) ?? 0) + us);
    const mod = moduleOf(f.url);
    modules.set(mod, (modules.get(mod) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>) =>
    [...m].map(([name, selfUs]) => ({ name, selfUs })).sort((a, b) => b.selfUs - a.selfUs);
  return {
    file,
    pid: pidOf(file),
    role: roleOf(profile.nodes.map((n) => n.callFrame.url)),
    totalUs,
    idleUs,
    frames: sorted(frames),
    modules: sorted(modules),
  };
}

function profilesIn(paths: string[]): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith('.cpuprofile'))
          .sort()
          .map((f) => join(p, f))
      : [p],
  );
}

function render(
  s: ProfileSummary,
  label: string,
  top: number,
  requests?: number,
  cpuMs?: number,
): string {
  const busy = s.totalUs - s.idleUs;
  // µs of CPU per request a frame stands for: its share of the busy samples × the measured CPU.
  const scale = cpuMs !== undefined ? (cpuMs * 1000) / Math.max(busy, 1) : 1 / (requests ?? 1);
  const ms = (us: number) => (us / 1000).toFixed(0);
  const pct = (us: number) => `${((100 * us) / Math.max(busy, 1)).toFixed(1)} %`.padStart(7);
  const per = (us: number) =>
    requests || cpuMs !== undefined ? `${(us * scale).toFixed(1).padStart(8)} µs/req` : '';
  const lines = [
    `## ${label} (${basename(s.file)})`,
    `${ms(s.totalUs)} ms profiled, ${ms(busy)} ms busy (${((100 * busy) / Math.max(s.totalUs, 1)).toFixed(0)} %)` +
      (requests
        ? `, ${(busy / requests).toFixed(0)} µs of main-thread wall time per request`
        : '') +
      (cpuMs !== undefined ? `; ${(cpuMs * 1000).toFixed(0)} µs of CPU per request (/proc)` : ''),
    '',
    'self time by module:',
    ...s.modules.slice(0, 8).map((m) => `${pct(m.selfUs)} ${per(m.selfUs)}  ${m.name}`),
    '',
    `top ${top} frames by self time:`,
    ...s.frames.slice(0, top).map((f) => `${pct(f.selfUs)} ${per(f.selfUs)}  ${f.name}`),
  ];
  return lines.join('\n');
}

function main(): number {
  const { values, positionals } = parseArgs({
    options: {
      top: { type: 'string', default: '20' },
      requests: { type: 'string' },
      name: { type: 'string', multiple: true, default: [] },
      from: { type: 'string' },
      to: { type: 'string' },
      cpu: { type: 'string', multiple: true, default: [] },
    },
    allowPositionals: true,
  });
  if (positionals.length === 0) {
    console.error(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]);
    return 2;
  }
  const names = new Map(
    values.name.map((n) => {
      const [pid, label] = n.split('=');
      return [Number(pid), label ?? pid!];
    }),
  );
  const cpuByName = new Map(
    values.cpu.map((c) => {
      const [name, ms] = c.split('=');
      return [name!, Number(ms)];
    }),
  );
  const requests = values.requests === undefined ? undefined : Number(values.requests);
  const window = {
    from: values.from === undefined ? undefined : Number(values.from),
    to: values.to === undefined ? undefined : Number(values.to),
  };
  const blocks = profilesIn(positionals).map((file) => {
    const s = summarize(file, window);
    const label = (s.pid !== undefined && names.get(s.pid)) || `${s.role} (pid ${s.pid ?? '?'})`;
    return render(s, label, Number(values.top), requests, cpuByName.get(label));
  });
  console.log(blocks.join('\n\n'));
  return 0;
}

if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1]))) {
  process.exitCode = main();
}

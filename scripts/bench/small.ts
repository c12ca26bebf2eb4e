/**
 * Small-object runs: closed-loop load from autocannon, in this process, with
 * identical settings for Trove and the reference so the client's own cost
 * weighs the same on both sides of a ratio.
 */
import autocannon from 'autocannon';
import { createRequire } from 'node:module';
import { CpuMeter, costPer, type CpuCost, type Watched } from './procfs.js';

export type Side = 'trove' | 'nginx';

export interface SmallSpec {
  side: Side;
  op: 'put' | 'get';
  /** Origin, e.g. http://127.0.0.1:8080. */
  origin: string;
  connections: number;
  /** The request body of a PUT. */
  body?: Buffer;
  /** Path of the next request; called once per request, from every connection. */
  nextPath: () => string;
  /** Processes serving the side, by name, for CPU accounting. */
  servers: () => Watched[];
}

export interface LoadCounts {
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
}

export interface SmallRun extends LoadCounts {
  side: Side;
  op: 'put' | 'get';
  connections: number;
  /** Seconds the measured run actually lasted. */
  seconds: number;
  /** 2xx responses per second. */
  rps: number;
  /** Latency of every response, ms (autocannon records whole milliseconds). */
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  /** Mean bytes received per response, headers included: a full 64 KiB body shows as a little over 65536. */
  bytesPerResponse: number;
  /** CPU per 2xx response, ms: the serving processes (in total and each), and this process (the load client). */
  cpuMsPerRequest: CpuCost;
  warmup: LoadCounts & { seconds: number };
}

/**
 * autocannon appends every response body to a string (`req.body += chunk`)
 * for its verifyBody/expectBody/onResponse hooks, none of which the bench
 * uses. For a 64 KiB body that costs the client about 1 ms of CPU per
 * response, ten times the rest of its work, and caps this 2-core machine
 * near 1,000 GET/s whatever the server: nginx would look ten times slower
 * than it is. Dropping the text (bytes are still counted, so short bodies
 * are still caught) makes the client cost ~0.1 ms. Returns false, and
 * leaves autocannon alone, if its internals are no longer what this expects.
 */
export function discardResponseBodies(): boolean {
  try {
    const queue = createRequire(import.meta.url)('autocannon/lib/pipelinedRequestsQueue.js') as {
      prototype?: { addBody?: unknown };
    };
    if (typeof queue.prototype?.addBody !== 'function') return false;
    queue.prototype.addBody = () => {};
    return true;
  } catch {
    return false;
  }
}

/** Seconds an answer may take before autocannon counts a timeout (an error). */
const TIMEOUT_S = 30;

function load(spec: SmallSpec, seconds: number): Promise<autocannon.Result> {
  const request: autocannon.Request = {
    method: spec.op === 'put' ? 'PUT' : 'GET',
    setupRequest: (req) => {
      req.path = spec.nextPath();
      return req;
    },
  };
  if (spec.body) {
    request.body = spec.body;
    request.headers = { 'content-type': 'image/jpeg' };
  }
  return Promise.resolve(
    autocannon({
      url: spec.origin,
      connections: spec.connections,
      duration: seconds,
      timeout: TIMEOUT_S,
      requests: [request],
    }),
  );
}

export function counts(r: autocannon.Result): LoadCounts {
  return {
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: Object.fromEntries(
      Object.entries(r.statusCodeStats).map(([code, s]) => [code, s.count]),
    ),
  };
}

/** A short warm-up, then the measured run with the same settings. */
export async function measureSmall(
  spec: SmallSpec,
  seconds: number,
  warmupS: number,
): Promise<SmallRun> {
  const warm = await load(spec, warmupS);
  const meter = new CpuMeter(spec.servers);
  meter.start();
  const r = await load(spec, seconds);
  const cpu = meter.stop();
  const c = counts(r);
  return {
    side: spec.side,
    op: spec.op,
    connections: spec.connections,
    seconds: r.duration,
    rps: r.duration > 0 ? c.ok / r.duration : 0,
    ...c,
    latencyMs: {
      mean: r.latency.mean,
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      max: r.latency.max,
    },
    bytesPerResponse: c.ok + c.non2xx > 0 ? r.throughput.total / (c.ok + c.non2xx) : 0,
    cpuMsPerRequest: costPer(cpu, c.ok),
    warmup: { ...counts(warm), seconds: warm.duration },
  };
}

/** Failed requests of a run, warm-up included, as readable lines (empty when all went well). */
export function smallFailures(run: LoadCounts & { warmup: LoadCounts }, label: string): string[] {
  const lines: string[] = [];
  for (const [phase, c] of [
    ['measured', run],
    ['warm-up', run.warmup],
  ] as const) {
    if (c.non2xx > 0 || c.errors > 0) {
      const codes = Object.entries(c.statusCodes)
        .filter(([code]) => !code.startsWith('2'))
        .map(([code, n]) => `${n}×${code}`)
        .join(', ');
      lines.push(
        `${label} (${phase}): ${c.non2xx} non-2xx${codes ? ` (${codes})` : ''}, ${c.errors} errors (${c.timeouts} timeouts)`,
      );
    }
  }
  return lines;
}

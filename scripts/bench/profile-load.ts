/**
 * The load to profile under: 64 KiB PUTs or GETs at a fixed concurrency
 * against a running cluster, the same requests as `npm run bench -- --only
 * small` makes (1 s warm-up, then --duration s), with no reference, so a
 * profile of each process (`NODE_OPTIONS=--cpu-prof npm start`) covers just
 * that traffic. Prints the 2xx count, warm-up included, and the load's
 * window on the profiles' clock, to pass to profile-summary.ts as
 * --requests <n> --from <µs> --to <µs>, and the CPU per request of each
 * process (from /proc, over the measured part) as --cpu <name>=<ms>: on two
 * shared cores a profile's "busy" is wall time, waits for a core included,
 * so its shares are what to read and this is what to scale them by.
 *
 * usage: node --import tsx scripts/bench/profile-load.ts put|get|prepare \
 *          [--connections 16] [--duration 10] [--ids <file>] [--gateway <url>]
 *
 *   prepare  uploads 200 files of 64 KiB (unlimited downloads) and writes their ids to --ids,
 *            so a later `get` (after restarting the cluster with profiling) downloads them
 *   put      PUT /upload/<fresh name>?max_downloads=0 for --duration s
 *   get      GET /download/<id> round-robin over the ids in --ids for --duration s
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { DEFAULT_GATEWAY, inspectCluster, storageDirFromEnv } from './cluster.js';
import type { BenchContext } from './context.js';
import { jpegBody, sha256 } from './payload.js';
import { SMALL_BYTES, uploadOne } from './small-suite.js';
import { discardResponseBodies, measureSmall } from './small.js';

const FILES = 200;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: {
      connections: { type: 'string', default: '16' },
      duration: { type: 'string', default: '10' },
      ids: { type: 'string', default: '/tmp/trove-profile-ids.json' },
      gateway: { type: 'string', default: DEFAULT_GATEWAY },
    },
    allowPositionals: true,
  });
  const what = positionals[0];
  if (what !== 'put' && what !== 'get' && what !== 'prepare') {
    console.error(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]);
    return 2;
  }
  const origin = values.gateway.replace(/\/+$/, '');

  if (what === 'prepare') {
    const dispatcher = new Agent({ connections: 8 });
    // uploadOne needs only the gateway's address and a client from the bench's context.
    const ctx = { trove: { origin, prefix: '' }, dispatcher } as unknown as BenchContext;
    const ids: string[] = [];
    for (let i = 0; i < FILES; i++) {
      const body = jpegBody(SMALL_BYTES);
      ids.push(await uploadOne(ctx, `profile-${i}.jpg`, body, sha256(body)));
    }
    writeFileSync(values.ids, JSON.stringify(ids));
    await dispatcher.close();
    console.log(`${ids.length} ids in ${values.ids}`);
    return 0;
  }

  discardResponseBodies();
  const probe = new Agent();
  const cluster = await inspectCluster(origin, storageDirFromEnv(), probe);
  await probe.close();
  const ids = what === 'get' ? (JSON.parse(readFileSync(values.ids, 'utf8')) as string[]) : [];
  const tag = Date.now().toString(36);
  let seq = 0;
  const now = () => process.hrtime.bigint() / 1000n; // µs, the monotonic clock V8's profiles use
  const from = now();
  const run = await measureSmall(
    {
      side: 'trove',
      op: what,
      origin,
      connections: Number(values.connections),
      body: what === 'put' ? jpegBody(SMALL_BYTES) : undefined,
      nextPath:
        what === 'put'
          ? () => `/upload/profile-${tag}-${seq++}.jpg?max_downloads=0`
          : () => `/download/${ids[seq++ % ids.length]}`,
      servers: () => cluster.processes,
    },
    Number(values.duration),
    1,
  );
  const to = now();
  const bad = run.non2xx + run.errors + run.warmup.non2xx + run.warmup.errors;
  console.log(
    `${what.toUpperCase()} c${values.connections}: ${run.ok + run.warmup.ok} × 2xx, warm-up included; ` +
      `measured ${run.ok} in ${run.seconds} s (${run.rps.toFixed(0)}/s, p50 ${run.latencyMs.p50}, ` +
      `p99 ${run.latencyMs.p99} ms), ${bad} failed`,
  );
  const cpu = Object.entries(run.cpuMsPerRequest.byProcess)
    .map(([name, ms]) => `--cpu ${name}=${ms.toFixed(3)}`)
    .join(' ');
  console.log(`--requests ${run.ok + run.warmup.ok} --from ${from} --to ${to} ${cpu}`);
  return bad > 0 ? 1 : 0;
}

process.exitCode = await main();

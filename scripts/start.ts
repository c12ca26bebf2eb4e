/**
 * `npm start`: the whole cluster on one machine. Checks Redis and RabbitMQ,
 * starts the storage nodes of NODES, then the gateway and a worker as child processes
 * with prefixed logs, prints the LAN URLs, and stops everything on Ctrl-C.
 *
 * A child that dies (say, `kill -9 $(cat storage/run/node1.pid)`) is reported
 * and not restarted: failover drills must be real. Each service writes its own
 * pid file under storage/run/, so the pid is that of the serving process.
 *
 * `--lb` (`npm run start:lb`): two gateways on PORT+1 and PORT+2, sharing the
 * SQLite file and Redis, behind a local nginx on PORT (nginx.conf rendered by
 * scripts/nginx-lb.ts into STORAGE_DIR/run/nginx/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, extname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  loadDotEnv,
  loadGatewayConfig,
  type GatewayConfig,
} from '../shared/config.js';
import { lanUrls } from '../shared/lan.js';
import {
  HOW_TO_START,
  checkRabbitMq,
  checkRedisConnection,
  type ServiceStatus,
} from '../shared/service-check.js';
import { phoneQr } from './terminal-qr.js';
import { findNginx, startNginx } from './nginx-lb.js';

const COLORS = [36, 33, 35, 32, 34, 31];
const tty = process.stdout.isTTY;

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
}

const children: Child[] = [];
let stopping = false;
/** Extra environment of every child: set once the configuration is read (see childLogEnv). */
let childEnv: Record<string, string> = {};

/**
 * Defaults for the children's environment that the user's own values override.
 * glibc's malloc gives threads that contend for it arenas of their own (up to
 * 8 per core) and keeps what each ever held: libuv's I/O threads, V8's helper
 * threads and libvips' image threads left 15-100 MB resident that two arenas
 * do not (docs/configuration.md, "Memory allocator"). Read by glibc, not by Trove.
 */
const ALLOCATOR_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2' };

function say(text: string): void {
  process.stdout.write(`${tty ? '\x1b[1m' : ''}[trove]${tty ? '\x1b[0m' : ''} ${text}\n`);
}

/**
 * The entry point of a service beside this script: `dist/<service>/main.js`
 * when we run built (npm start), `<service>/main.ts` under tsx in development.
 */
function entryPoint(service: 'gateway' | 'storage-node' | 'worker'): string[] {
  const self = fileURLToPath(import.meta.url);
  const file = join(dirname(self), '..', service, `main${extname(self)}`);
  return extname(self) === '.ts' ? ['--import', 'tsx', file] : [file];
}

function launch(
  name: string,
  entry: string[],
  args: string[],
  color: number,
  env: Record<string, string> = {},
): Child {
  const proc = spawn(process.execPath, [...entry, ...args], {
    env: { ...ALLOCATOR_ENV, ...process.env, ...childEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return track(name, proc, color);
}

/** Prefixes a child's output, reports its death and stops it with the rest. */
function track(name: string, proc: ChildProcess, color: number): Child {
  const prefix = tty ? `\x1b[${color}m${name.padEnd(8)}│\x1b[0m ` : `${name.padEnd(8)}| `;
  for (const stream of [proc.stdout!, proc.stderr!]) {
    createInterface({ input: stream }).on('line', (line) =>
      process.stdout.write(prefix + line + '\n'),
    );
  }
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      if (!stopping) {
        say(`${name} exited (${signal ?? `code ${code}`}); not restarting it.`);
        say(`bring it back with: ${restartHint(name)}`);
      }
      resolve();
    });
  });
  const child = { name, proc, exited };
  children.push(child);
  return child;
}

/**
 * A child writes to our pipe, not to the terminal, so LOG_FORMAT=auto would
 * give JSON: when we are on a terminal, ask the children for pretty, coloured lines.
 */
function childLogEnv(config: GatewayConfig): Record<string, string> {
  return tty && config.logFormat === 'auto' ? { LOG_FORMAT: 'pretty', FORCE_COLOR: '1' } : {};
}

function restartHint(name: string): string {
  if (name === 'gateway' || name === 'worker') return `npm run ${name}`;
  if (name === 'nginx') return 'Ctrl-C and `npm run start:lb` again';
  if (name.startsWith('gateway'))
    return `GATEWAY_ID=${name} PORT=<its port> TRUST_PROXY=true npm run gateway`;
  return `npm run storage-node -- --id ${name}`;
}

async function waitHealthy(
  name: string,
  url: string,
  child: Child,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null)
      throw new Error(`${name} exited during start-up`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${name} did not become healthy at ${url} within ${timeoutMs / 1000} s`);
}

async function stopAll(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  say(`stopping (${signal})…`);
  for (const c of children) c.proc.kill('SIGTERM');
  const grace = setTimeout(() => {
    for (const c of children) c.proc.kill('SIGKILL');
  }, 10_000);
  await Promise.all(children.map((c) => c.exited));
  clearTimeout(grace);
  say('stopped.');
  process.exit(0);
}

/** RabbitMQ answers when any node of AMQP_URLS does (the processes try them in turn). */
async function checkAnyRabbitMq(urls: string[]): Promise<ServiceStatus> {
  const results = await Promise.all(urls.map((url) => checkRabbitMq(url)));
  return results.find((r) => r.ok) ?? results[0]!;
}

async function checkServices(config: GatewayConfig): Promise<boolean> {
  const results = await Promise.all([
    checkRedisConnection(config.redisConnection),
    checkAnyRabbitMq(config.amqpUrls),
  ]);
  for (const r of results) {
    if (r.ok) continue;
    say(`${r.name} does not answer at ${r.url} (${r.detail}). Start it with one of:`);
    for (const line of HOW_TO_START[r.name as keyof typeof HOW_TO_START]) say(`    ${line}`);
  }
  return results.every((r) => r.ok);
}

async function main(): Promise<void> {
  loadDotEnv();
  let config: GatewayConfig;
  try {
    config = loadGatewayConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    say(err.message);
    process.exit(1);
  }
  if (!(await checkServices(config))) process.exit(1);
  childEnv = childLogEnv(config);

  process.on('SIGINT', () => void stopAll('SIGINT'));
  process.on('SIGTERM', () => void stopAll('SIGTERM'));

  try {
    const nodes = config.nodes.map((n, i) => ({
      n,
      child: launch(n.id, entryPoint('storage-node'), ['--id', n.id], COLORS[i % COLORS.length]!),
    }));
    await Promise.all(nodes.map(({ n, child }) => waitHealthy(n.id, n.url, child)));
    if (lb) {
      await startBalanced(config);
    } else {
      const gateway = launch('gateway', entryPoint('gateway'), [], 37);
      await waitHealthy('gateway', `http://127.0.0.1:${config.server.port}`, gateway);
    }
    launch('worker', entryPoint('worker'), [], 90);
  } catch (err) {
    say(`start-up failed: ${(err as Error).message}`);
    await stopAll('SIGTERM');
    return;
  }

  const urls = lanUrls(config.server.host, config.server.port);
  if (lb && !nginxUp) {
    say('Trove is up without nginx (not installed: apt-get install nginx-light). Gateways:');
    for (const port of [config.server.port + 1, config.server.port + 2])
      for (const url of lanUrls(config.server.host, port)) say(`    ${url}`);
    say('Ctrl-C stops everything.');
    await waitForExits();
    return;
  }
  say(
    lb ? 'Trove is up behind nginx (two gateways). Open or share:' : 'Trove is up. Open or share:',
  );
  for (const url of urls) say(`    ${url}`);
  process.stdout.write(await phoneQr(urls, config.urls.publicUrl));
  say(`upload:  curl -F file=@photo.jpg ${urls.at(-1)}/upload`);
  say(`pids:    ${config.storageDir}/run/*.pid   (kill -9 one node to see failover)`);
  say('Ctrl-C stops everything.');
  await waitForExits();
}

async function waitForExits(): Promise<void> {
  await Promise.all(children.map((c) => c.exited));
  if (!stopping) {
    say('every service has exited.');
    process.exit(1);
  }
}

const lb = process.argv.includes('--lb');
let nginxUp = false;

/**
 * Two gateways on PORT+1 and PORT+2 (same SQLite file, same Redis), and nginx
 * on PORT in front of them when it is installed.
 */
async function startBalanced(config: GatewayConfig): Promise<void> {
  const nginxBinary = findNginx();
  const ports = [config.server.port + 1, config.server.port + 2];
  await Promise.all(
    ports.map((port, i) => {
      const name = `gateway${i + 1}`;
      // Behind nginx they trust X-Forwarded-*: only nginx, on this machine, may reach them.
      const env: Record<string, string> = { PORT: String(port), GATEWAY_ID: name };
      if (nginxBinary) Object.assign(env, { TRUST_PROXY: 'true', HOST: '127.0.0.1' });
      const child = launch(name, entryPoint('gateway'), [], i ? 97 : 37, env);
      return waitHealthy(name, `http://127.0.0.1:${port}`, child);
    }),
  );
  if (!nginxBinary) return;
  const listen =
    config.server.host === '0.0.0.0'
      ? String(config.server.port)
      : `${config.server.host}:${config.server.port}`;
  const nginx = await startNginx(nginxBinary, join(config.storageDir, 'run', 'nginx'), {
    listen,
    gateways: ports.map((p) => `127.0.0.1:${p}`),
  });
  track('nginx', nginx.proc, 92);
  nginxUp = true;
  say(
    `nginx ${nginxBinary} on ${listen} → 127.0.0.1:${ports.join(', 127.0.0.1:')} (${nginx.confFile})`,
  );
  say(
    `gateway pids: ${children
      .filter((c) => c.name.startsWith('gateway'))
      .map((c) => `${c.name} ${c.proc.pid}`)
      .join(', ')}`,
  );
}

await main();

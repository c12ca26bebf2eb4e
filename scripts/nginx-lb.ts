/**
 * nginx in front of local gateways. The repo's nginx.conf is written for
 * docker compose (upstreams gateway1:8080, gateway2:8080); this renders it for
 * local ports and runs it from a private prefix, so no root and no system
 * nginx config are involved. Used by `npm run start:lb` and test/nginx.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { delimiter, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
/** The repo root, from scripts/ (tsx) or dist/scripts/ (built). */
export const REPO_ROOT = resolve(dirname(self), extname(self) === '.ts' ? '..' : '../..');
export const NGINX_CONF = join(REPO_ROOT, 'nginx.conf');

/** `$NGINX`, else nginx on PATH, else Debian's /usr/sbin/nginx (sbin is often off a user's PATH). */
export function findNginx(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  const candidates = [env.NGINX, ...dirs.map((d) => join(d, 'nginx')), '/usr/sbin/nginx'];
  return candidates.find((file) => {
    if (!file) return false;
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface NginxTarget {
  /** What `listen` gets: a port, or host:port. */
  listen: string;
  /** Gateways as host:port. */
  gateways: string[];
}

const UPSTREAM_LINE = /^([ \t]*)server gateway\d+:8080([^;\n]*);[ \t]*\n/gm;
const LISTEN_LINE = /^([ \t]*)listen 8080;/m;

/** nginx.conf with its compose upstreams and listen port swapped for `target`'s. */
export function renderNginxConf(template: string, target: NginxTarget): string {
  const upstreams = [...template.matchAll(UPSTREAM_LINE)];
  if (upstreams.length === 0 || !LISTEN_LINE.test(template))
    throw new Error('nginx.conf has no `server gatewayN:8080` or `listen 8080;` line to fill in');
  if (target.gateways.length === 0) throw new Error('at least one gateway is needed');
  const [, indent, params] = upstreams[0]!;
  const servers = target.gateways.map((g) => `${indent}server ${g}${params};\n`).join('');
  let first = true;
  return template
    .replace(UPSTREAM_LINE, () => (first ? ((first = false), servers) : ''))
    .replace(LISTEN_LINE, (_, ind: string) => `${ind}listen ${target.listen};`);
}

export interface RunningNginx {
  /** Where to reach it from this machine. */
  url: string;
  proc: ChildProcess;
  exited: Promise<void>;
  /** The rendered config, kept for the operator to read. */
  confFile: string;
  stop(): Promise<void>;
}

function localUrl(listen: string): string {
  const port = listen.split(':').at(-1);
  const host = listen.includes(':') ? listen.slice(0, listen.lastIndexOf(':')) : '127.0.0.1';
  return `http://${host === '0.0.0.0' || host === '*' ? '127.0.0.1' : host}:${port}`;
}

async function waitAnswering(nginx: RunningNginx, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (nginx.proc.exitCode !== null || nginx.proc.signalCode !== null)
      throw new Error(`nginx exited at start-up:\n${output()}`);
    const ok = await fetch(`${nginx.url}/health`, { signal: AbortSignal.timeout(1000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not answer at ${nginx.url}/health:\n${output()}`);
}

/**
 * Renders nginx.conf into `prefix` and runs nginx in the foreground from there
 * (pid file and temp dirs are relative to the prefix); resolves once it answers.
 */
export async function startNginx(
  binary: string,
  prefix: string,
  target: NginxTarget,
): Promise<RunningNginx> {
  await mkdir(prefix, { recursive: true });
  // Under root, workers run as nobody and must still reach the temp dirs inside.
  await chmod(prefix, 0o755);
  const confFile = join(prefix, 'nginx.conf');
  await writeFile(confFile, renderNginxConf(readFileSync(NGINX_CONF, 'utf8'), target));
  const proc = spawn(binary, ['-p', `${prefix}/`, '-c', confFile, '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((done) => proc.once('exit', () => done()));
  const nginx: RunningNginx = {
    url: localUrl(target.listen),
    proc,
    exited,
    confFile,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
  try {
    await waitAnswering(nginx, () => output);
  } catch (err) {
    await nginx.stop();
    throw err;
  }
  return nginx;
}

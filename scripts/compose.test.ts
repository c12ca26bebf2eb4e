/**
 * docker-compose.yml checked without a Docker engine: the services and how
 * they connect, and every Trove service's environment run through the same
 * config loaders the processes use at start-up.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadGatewayConfig, loadNodeConfig, loadWorkerConfig } from '../shared/config.js';
import { NGINX_CONF, REPO_ROOT } from './nginx-lb.js';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string | number | boolean>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  container_name?: string;
}

const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), {
  merge: true,
}) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;

/** Compose's `${VAR:-default}`, with `vars` standing in for the shell and .env. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_, name: string, fallback?: string) =>
    vars[name] ? vars[name] : (fallback ?? ''),
  );
}

function envOf(name: string, vars: Record<string, string> = {}): Record<string, string> {
  const env = services[name]!.environment ?? {};
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(String(v), vars)]));
}

const troveServices = Object.keys(services).filter((s) => services[s]!.build);
const nodes = ['node1', 'node2', 'node3'];
const gateways = ['gateway1', 'gateway2'];
const secret = { CLUSTER_SECRET: 'a-test-secret-of-enough-length' };

describe('docker-compose.yml', () => {
  it('has the servers, three nodes, two gateways, a worker and nginx', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'gateway1',
        'gateway2',
        'nginx',
        'node1',
        'node2',
        'node3',
        'rabbitmq',
        'redis',
        'worker',
      ].sort(),
    );
    expect(troveServices.sort()).toEqual([...gateways, ...nodes, 'worker'].sort());
    expect(services.rabbitmq!.image).toMatch(/management/);
  });

  it('runs every Trove service from the one image, by its command', () => {
    for (const name of troveServices) {
      const [bin, entry] = services[name]!.command!;
      expect(bin, name).toBe('node');
      expect(entry, name).toMatch(/^dist\/(gateway|storage-node|worker)\/main\.js$/);
      const source = entry!.replace(/^dist\//, '').replace(/\.js$/, '.ts');
      expect(existsSync(join(REPO_ROOT, source)), source).toBe(true);
      expect(services[name]!.image, name).toBe('trove:local');
    }
  });

  it('publishes only nginx, Redis and RabbitMQ (the latter two on loopback)', () => {
    expect(services.nginx!.ports).toEqual(['8080:8080']);
    expect(services.rabbitmq!.ports).toContain('127.0.0.1:15672:15672');
    for (const p of [...services.redis!.ports!, ...services.rabbitmq!.ports!])
      expect(p).toMatch(/^127\.0\.0\.1:/);
    for (const name of troveServices) expect(services[name]!.ports, name).toBeUndefined();
  });

  it('gives each node its own data volume and every Trove service the shared one', () => {
    const dataVolumes = nodes.map((n) => {
      const vols = services[n]!.volumes!;
      expect(vols).toContain('cluster:/cluster');
      const data = vols.find((v) => v.endsWith(':/data'));
      expect(data, n).toBeDefined();
      return data!.split(':')[0];
    });
    expect(new Set(dataVolumes).size).toBe(3);
    for (const name of troveServices) expect(services[name]!.volumes).toContain('cluster:/cluster');
    const named = Object.values(services)
      .flatMap((s) => s.volumes ?? [])
      .map((v) => v.split(':')[0]!)
      .filter((v) => !v.startsWith('.'));
    for (const v of named) expect(Object.keys(compose.volumes), v).toContain(v);
  });

  it('waits on healthchecks, and every dependency has one', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(condition, `${name} → ${dep}`).toBe('service_healthy');
        expect(services[dep]!.healthcheck, dep).toBeDefined();
      }
    }
    for (const name of [...gateways, 'worker'])
      expect(Object.keys(services[name]!.depends_on!).sort()).toEqual(
        ['node1', 'node2', 'node3', 'rabbitmq', 'redis'].sort(),
      );
    expect(Object.keys(services.nginx!.depends_on!).sort()).toEqual(gateways);
  });

  it('configures each node so it listens on the port NODES gives it, in the network', () => {
    for (const id of nodes) {
      const config = loadNodeConfig(envOf(id, secret), services[id]!.command);
      expect(config.id).toBe(id);
      expect(config.host).toBe('0.0.0.0');
      expect(config.dataDir).toBe('/data');
      const own = config.nodes.find((n) => n.id === id)!;
      expect(own.url).toBe(`http://${id}:${config.port}`);
      expect(services[id]!.healthcheck!.test.join(' ')).toContain(`127.0.0.1:${config.port}/`);
    }
  });

  it('configures two gateways behind the proxy, on one database, Redis and secret', () => {
    const configs = gateways.map((g) => loadGatewayConfig(envOf(g, secret)));
    expect(configs.map((c) => c.gatewayId)).toEqual(gateways);
    for (const c of configs) {
      expect(c).toMatchObject({ host: '0.0.0.0', port: 8080, trustProxy: true });
      expect(c.nodes.map((n) => n.id)).toEqual(nodes);
    }
    const worker = loadWorkerConfig(envOf('worker', secret));
    for (const c of [...configs, worker]) {
      expect(c.dbPath).toBe('/cluster/trove.db');
      expect(c.redisUrl).toBe('redis://redis:6379');
      expect(c.amqpUrl).toMatch(/@rabbitmq:5672$/);
      expect(c.clusterSecret).toBe(secret.CLUSTER_SECRET);
      expect(c.clusterName).toBe(configs[0]!.clusterName);
    }
  });

  it('still loads with CLUSTER_SECRET unset (then generated into the shared volume)', () => {
    expect(loadGatewayConfig(envOf('gateway1')).clusterSecret).toBeUndefined();
    expect(loadNodeConfig(envOf('node1'), []).storageDir).toBe('/cluster');
    expect(loadWorkerConfig(envOf('worker')).storageDir).toBe('/cluster');
  });

  it('lets the worker scale: no fixed name, id or port', () => {
    const worker = services.worker!;
    expect(worker.container_name).toBeUndefined();
    expect(worker.ports).toBeUndefined();
    expect(worker.environment!.WORKER_ID).toBeUndefined();
  });

  it('mounts nginx.conf, whose upstreams are the gateway services on their port', () => {
    expect(services.nginx!.volumes).toContain('./nginx.conf:/etc/nginx/nginx.conf:ro');
    const upstreams = [...readFileSync(NGINX_CONF, 'utf8').matchAll(/^\s*server (\S+?):(\d+)/gm)];
    expect(upstreams.map((m) => m[1])).toEqual(gateways);
    for (const m of upstreams) expect(envOf(m[1]!).PORT).toBe(m[2]);
  });
});

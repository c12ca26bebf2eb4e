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
import { describeMetadataStore } from '../shared/open-metadata-store.js';
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
  restart?: string;
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
/** The processes that keep metadata: gateways and workers. */
const metadataUsers = [...gateways, 'worker'];
const secret = { CLUSTER_SECRET: 'a-test-secret-of-enough-length' };

describe('docker-compose.yml', () => {
  it('has the servers, three nodes, two gateways, a worker, nginx, Prometheus and Grafana', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'gateway1',
        'gateway2',
        'grafana',
        'nginx',
        'node1',
        'node2',
        'node3',
        'postgres',
        'prometheus',
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

  it('publishes only nginx, and PostgreSQL, Redis, RabbitMQ, Prometheus and Grafana on loopback', () => {
    expect(services.nginx!.ports).toEqual(['8080:8080']);
    expect(services.rabbitmq!.ports).toContain('127.0.0.1:15672:15672');
    expect(services.prometheus!.ports).toEqual(['127.0.0.1:9090:9090']);
    expect(services.grafana!.ports).toEqual(['127.0.0.1:3000:3000']);
    expect(services.postgres!.ports).toEqual(['127.0.0.1:5432:5432']);
    for (const name of ['postgres', 'redis', 'rabbitmq', 'prometheus', 'grafana'])
      for (const p of services[name]!.ports!) expect(p, name).toMatch(/^127\.0\.0\.1:/);
    for (const name of troveServices) expect(services[name]!.ports, name).toBeUndefined();
  });

  it('gives each node its own data volume and every Trove service the shared one (the secret)', () => {
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
    for (const name of metadataUsers)
      expect(Object.keys(services[name]!.depends_on!).sort()).toEqual(
        ['node1', 'node2', 'node3', 'postgres', 'rabbitmq', 'redis'].sort(),
      );
    expect(Object.keys(services.nginx!.depends_on!).sort()).toEqual(gateways);
  });

  it('configures each node so it listens on the port NODES gives it, in the network', () => {
    for (const id of nodes) {
      const config = loadNodeConfig(envOf(id, secret), services[id]!.command);
      expect(config.nodeId).toBe(id);
      expect(config.nodeHost).toBe('0.0.0.0');
      expect(config.nodeDataDir).toBe('/data');
      const own = config.nodes.find((n) => n.id === id)!;
      expect(own.url).toBe(`http://${id}:${config.nodePort}`);
      expect(services[id]!.healthcheck!.test.join(' ')).toContain(`127.0.0.1:${config.nodePort}/`);
    }
  });

  it('configures two gateways behind the proxy, on one database, Redis and secret', () => {
    const configs = gateways.map((g) => loadGatewayConfig(envOf(g, secret)));
    expect(configs.map((c) => c.server.gatewayId)).toEqual(gateways);
    for (const c of configs) {
      expect(c).toMatchObject({
        server: { host: '0.0.0.0', port: 8080 },
        urls: { trustProxy: true },
      });
      expect(c.nodes.map((n) => n.id)).toEqual(nodes);
    }
    const worker = loadWorkerConfig(envOf('worker', secret));
    for (const c of [...configs, worker]) {
      expect(c.databaseUrl).toBe('postgres://trove:trove@postgres:5432/trove');
      expect(c.redisUrl).toBe('redis://redis:6379');
      expect(c.amqpUrl).toMatch(/@rabbitmq:5672$/);
      expect(c.clusterSecret).toBe(secret.CLUSTER_SECRET);
      expect(c.clusterName).toBe(configs[0]!.clusterName);
    }
  });

  it('runs PostgreSQL with its data on a volume of its own, healthy once it accepts connections', () => {
    const pg = services.postgres!;
    expect(pg.image).toMatch(/^postgres:1[56](\.|-|$)/);
    expect(pg.restart).toBe('unless-stopped');
    const data = pg.volumes!.find((v) => v.endsWith(':/var/lib/postgresql/data'));
    expect(data).toBeDefined();
    const volume = data!.split(':')[0]!;
    expect(Object.keys(compose.volumes)).toContain(volume);
    for (const [name, s] of Object.entries(services))
      if (name !== 'postgres')
        for (const v of s.volumes ?? []) expect(v.split(':')[0], name).not.toBe(volume);
    expect(pg.healthcheck!.test.join(' ')).toMatch(/pg_isready/);
    // Defaults when .env says nothing, and .env's values when it does.
    expect(envOf('postgres')).toEqual({
      POSTGRES_USER: 'trove',
      POSTGRES_PASSWORD: 'trove',
      POSTGRES_DB: 'trove',
    });
    const vars = { POSTGRES_USER: 'u', POSTGRES_PASSWORD: 'p4ss', POSTGRES_DB: 'meta' };
    expect(envOf('postgres', vars)).toEqual({
      POSTGRES_USER: 'u',
      POSTGRES_PASSWORD: 'p4ss',
      POSTGRES_DB: 'meta',
    });
    for (const name of metadataUsers)
      expect(envOf(name, vars).DATABASE_URL, name).toBe('postgres://u:p4ss@postgres:5432/meta');
  });

  it('gives gateways and workers PostgreSQL, waited for, and no SQLite file to share', () => {
    for (const name of metadataUsers) {
      const env = envOf(name, secret);
      const config = name === 'worker' ? loadWorkerConfig(env) : loadGatewayConfig(env);
      // With DATABASE_URL set, openMetadataStore opens PostgreSQL and never DB_PATH.
      const url = new URL(config.databaseUrl!);
      expect(url.hostname, name).toBe('postgres');
      expect(Number(url.port), name).toBe(5432);
      expect(describeMetadataStore(config), name).toMatch(
        /^postgres:\/\/trove:\*\*\*@postgres:5432\//,
      );
      expect(services[name]!.depends_on!.postgres, name).toEqual({ condition: 'service_healthy' });
    }
    // No service names a SQLite file: nothing on the shared volume is a database.
    for (const [name, s] of Object.entries(services))
      expect(s.environment?.DB_PATH, name).toBeUndefined();
    // Storage nodes keep no metadata, so they are not given the database.
    for (const id of nodes) expect(envOf(id).DATABASE_URL, id).toBeUndefined();
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

  it('mounts files that exist for Prometheus and Grafana', () => {
    for (const name of ['prometheus', 'grafana', 'nginx']) {
      for (const volume of services[name]!.volumes!) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.'))
          expect(existsSync(join(REPO_ROOT, source)), `${name}: ${source}`).toBe(true);
      }
    }
    expect(services.prometheus!.volumes).toContain(
      './deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro',
    );
    expect(services.prometheus!.healthcheck!.test.join(' ')).toContain('127.0.0.1:9090/-/ready');
    expect(services.grafana!.depends_on).toEqual({ prometheus: { condition: 'service_healthy' } });
  });

  it('scrapes both gateways, the three nodes and every worker, each on its own port', () => {
    const prometheus = parse(readFileSync(join(REPO_ROOT, 'deploy/prometheus.yml'), 'utf8')) as {
      scrape_configs: {
        job_name: string;
        static_configs?: { targets: string[] }[];
        dns_sd_configs?: { names: string[]; type: string; port: number }[];
      }[];
    };
    const jobs = Object.fromEntries(prometheus.scrape_configs.map((j) => [j.job_name, j]));
    const targets = (job: string) => jobs[job]!.static_configs!.flatMap((c) => c.targets);
    expect(targets('trove-gateway')).toEqual(
      gateways.map((g) => `${g}:${loadGatewayConfig(envOf(g, secret)).server.port}`),
    );
    expect(targets('trove-node')).toEqual(
      nodes.map((n) => `${n}:${loadNodeConfig(envOf(n, secret), services[n]!.command).nodePort}`),
    );
    // Workers scale, so they are found by the service's name; each listens beyond loopback.
    const worker = loadWorkerConfig(envOf('worker', secret));
    expect(jobs['trove-worker']!.dns_sd_configs).toEqual([
      expect.objectContaining({ names: ['worker'], type: 'A', port: worker.workerMetricsPort }),
    ]);
    expect(worker.workerMetricsPort).toBeGreaterThan(0);
    expect(worker.workerMetricsHost).toBe('0.0.0.0');
  });

  it('provisions Grafana with Prometheus and a dashboard of the Trove metrics', () => {
    const mounts = Object.fromEntries(
      services.grafana!.volumes!.map((v) => v.split(':')).map(([from, to]) => [to!, from!]),
    );
    const provisioning = join(REPO_ROOT, mounts['/etc/grafana/provisioning']!);
    const datasources = parse(
      readFileSync(join(provisioning, 'datasources/prometheus.yml'), 'utf8'),
    ) as { datasources: { uid: string; type: string; url: string }[] };
    expect(datasources.datasources[0]).toMatchObject({
      uid: 'prometheus',
      type: 'prometheus',
      url: `http://prometheus:${services.prometheus!.ports![0]!.split(':').at(-1)}`,
    });
    const providers = parse(readFileSync(join(provisioning, 'dashboards/trove.yml'), 'utf8')) as {
      providers: { options: { path: string } }[];
    };
    const dashboardsDir = providers.providers[0]!.options.path;
    expect(mounts[dashboardsDir], dashboardsDir).toBeDefined();
    const dashboard = JSON.parse(
      readFileSync(join(REPO_ROOT, mounts[dashboardsDir]!, 'trove.json'), 'utf8'),
    ) as { panels: { datasource: { uid: string }; targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const metric of [
      'trove_http_requests_total',
      'trove_http_request_duration_seconds_bucket',
      'trove_upload_bytes_total',
      'trove_download_bytes_total',
      'trove_node_state',
      'trove_objects_under_replicated',
      'trove_jobs_total',
      'trove_queue_depth',
      'trove_process_resident_memory_bytes',
    ])
      expect(exprs, metric).toContain(metric);
    for (const panel of dashboard.panels) expect(panel.datasource.uid).toBe('prometheus');
  });
});

/**
 * The per-host `.env` files of docs/deployment.md ("Three hosts"), run through
 * the config loaders the processes use, so a reader who pastes them gets a
 * cluster whose hosts agree with each other.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadGatewayConfig, loadNodeConfig, loadWorkerConfig } from '../shared/config.js';
import { REPO_ROOT } from './nginx-lb.js';

const doc = readFileSync(join(REPO_ROOT, 'docs/deployment.md'), 'utf8');
const hosts = [...doc.matchAll(/`\.env` on (host\d):\n\n```sh\n([\s\S]*?)```/g)].map(
  ([, host, body]) => ({ host: host!, env: parseEnv(body!) }),
);

/** KEY=value lines, with the placeholders filled in as a reader would. */
function parseEnv(body: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of body.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (!m) continue;
    env[m[1]!] = m[2]!.replace('<the secret>', 'f'.repeat(64)).replace(/<[a-z-]+>/g, '0a1b2c3d');
  }
  return env;
}

describe('docs/deployment.md, three hosts', () => {
  it('gives a .env for each of the three hosts', () => {
    expect(hosts.map((h) => h.host)).toEqual(['host1', 'host2', 'host3']);
  });

  it('loads for the gateway, worker and node of each host, on that host', () => {
    for (const [i, { host, env }] of hosts.entries()) {
      const address = `10.0.0.${i + 1}`;
      const gateway = loadGatewayConfig(env);
      expect(gateway.server, host).toMatchObject({ host: address, gatewayId: `gateway${i + 1}` });
      expect(gateway.urls.trustProxy, host).toBe(true);
      const worker = loadWorkerConfig(env);
      expect(worker.workerMetricsHost, host).toBe(address);
      const node = loadNodeConfig(env, ['--id', `node${i + 1}`]);
      expect(node.nodeHost, host).toBe(address);
      expect(node.nodes.find((n) => n.id === node.nodeId)!.url, host).toBe(
        `http://${address}:${node.nodePort}`,
      );
      for (const c of [gateway, worker]) {
        expect(c.databaseUrl, host).toMatch(/^postgres:\/\//);
        expect(c.redisSentinels, host).toHaveLength(3);
        expect(c.amqpUrls, host).toHaveLength(3);
        expect(c.amqpQueueType, host).toBe('quorum');
      }
    }
  });

  it('agrees across hosts on everything the cluster shares', () => {
    const shared = [
      'CLUSTER_NAME',
      'CLUSTER_SECRET',
      'NODES',
      'DATABASE_URL',
      'REDIS_SENTINELS',
      'REDIS_SENTINEL_NAME',
      'REDIS_URL',
      'AMQP_URLS',
      'AMQP_QUEUE_TYPE',
    ];
    for (const key of shared) {
      expect(hosts[0]!.env[key], key).toBeDefined();
      for (const { host, env } of hosts)
        expect(env[key], `${host} ${key}`).toBe(hosts[0]!.env[key]);
    }
    const ids = hosts.map(({ env }) => env.GATEWAY_ID);
    expect(new Set(ids).size).toBe(3);
  });
});

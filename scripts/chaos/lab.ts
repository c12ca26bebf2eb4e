/**
 * The chaos drill's cluster: three storage nodes, each a host of its own (a
 * network namespace, test/netns.ts) with a small filesystem of its own
 * mounted on its data directory; two gateways and two workers on a private
 * PostgreSQL and a private Redis (test/private-postgres.ts,
 * test/private-redis.ts), which the drill may restart or flush without
 * touching anything else on the machine; RabbitMQ is the machine's, its
 * connections closed per process from the broker's side.
 *
 * It reuses the integration tests' harness (real processes from dist/, one
 * log file each, killed with real signals).
 */
import { startCluster, type Cluster, type TestNode } from '../../test/harness.js';
import { createNetwork, type Network } from '../../test/netns.js';
import { mountDisk, unmountDisk } from '../../test/node-disk.js';
import { startPrivatePostgres, type PrivatePostgres } from '../../test/private-postgres.js';
import { startPrivateRedis, type PrivateRedis } from '../../test/private-redis.js';
import type { Targets } from './schedule.js';

export const GATEWAYS = ['gw1', 'gw2'];
export const WORKERS = ['worker1', 'worker2'];
export const NODES = ['node1', 'node2', 'node3'];
/** What the faults can hit (the schedule needs only the names, not a running lab). */
export const LAB_TARGETS: Targets = { nodes: NODES, gateways: GATEWAYS, workers: WORKERS };
/** Size of each node's filesystem (tmpfs): room for a run's files, and quick to fill for disk-full. */
export const NODE_DISK_MB = 256;

export interface Lab {
  cluster: Cluster;
  network: Network;
  redis: PrivateRedis;
  postgres: PrivatePostgres;
  /** Gateway name → base URL. */
  gateways: Map<string, string>;
  targets: Targets;
  node(id: string): TestNode;
  /** The host (namespace) a node runs in. */
  hostOf(nodeId: string): string;
  /** Stops everything and removes what it made. */
  close(): Promise<void>;
}

/** A node's own small disk, so a full disk is a real ENOSPC (test/node-disk.ts). */
async function prepareNode(node: TestNode): Promise<void> {
  mountDisk(node.dataDir, NODE_DISK_MB);
}

export async function startLab(log: (msg: string) => void): Promise<Lab> {
  const network = createNetwork(3);
  const made: { redis?: PrivateRedis; postgres?: PrivatePostgres; cluster?: Cluster } = {};
  try {
    log('starting a private PostgreSQL and Redis');
    made.postgres = await startPrivatePostgres();
    made.redis = await startPrivateRedis();
    const databaseUrl = await made.postgres.createDatabase('trove');
    log('starting 3 nodes on 3 hosts, 2 gateways, 2 workers');
    const cluster = (made.cluster = await startCluster({
      noGateway: true,
      databaseUrl,
      nodeNamespaces: network.hosts.map((h) => ({ namespace: h.namespace, address: h.address })),
      prepareNode,
      env: {
        REDIS_URL: made.redis.url,
        RATE_LIMITS: 'off',
        // Every client of the drill is 127.0.0.1: with resume grants, a ranged read of a file
        // any client downloaded would be free, which the limits check does not model (yet).
        DOWNLOAD_GRANT_TTL_SECONDS: '0',
        ALLOWED_TYPES: 'image/*',
        // What a connection into a cut host costs before failing over (5 s by default).
        NODE_TIMEOUT_MS: '2000',
        // Repair at its production pace (REPAIR_SCHEDULE: every 5 min): redundancy must come
        // back from the repair jobs themselves, not from a sweep set to run every few seconds.
        LAYOUT_POLL_MS: '1000',
        LOG_LEVEL: 'info',
      },
    }));
    const gateways = new Map<string, string>();
    for (const name of GATEWAYS) gateways.set(name, await cluster.startGateway(name));
    for (const name of WORKERS) await cluster.startWorker(name);
    const { redis, postgres } = made;
    return {
      cluster,
      network,
      redis,
      postgres,
      gateways,
      targets: LAB_TARGETS,
      node(id) {
        const node = cluster.nodes.find((n) => n.id === id);
        if (!node) throw new Error(`no node ${id}`);
        return node;
      },
      hostOf(nodeId) {
        return network.hosts[cluster.nodes.findIndex((n) => n.id === nodeId)]!.name;
      },
      async close() {
        await closeAll(network, made);
      },
    };
  } catch (err) {
    const tail = made.cluster?.logTail(30) ?? '';
    await closeAll(network, made);
    throw new Error(`${(err as Error).message}\n${tail}`);
  }
}

async function closeAll(
  network: Network,
  made: { redis?: PrivateRedis; postgres?: PrivatePostgres; cluster?: Cluster },
): Promise<void> {
  const { cluster } = made;
  if (cluster) {
    // Paused processes must run again to die of SIGTERM; the disks go before the directory does.
    for (const name of [...cluster.nodes.map((n) => n.id), ...GATEWAYS, ...WORKERS])
      cluster.proc(name)?.proc.kill('SIGCONT');
    await Promise.all(
      [...cluster.nodes.map((n) => n.id), ...GATEWAYS, ...WORKERS].map((n) =>
        cluster.kill(n, 'SIGKILL'),
      ),
    );
    for (const node of cluster.nodes) unmountDisk(node.dataDir);
    await cluster.stop().catch(() => undefined);
  }
  await made.redis?.destroy().catch(() => undefined);
  await made.postgres?.destroy().catch(() => undefined);
  network.destroy();
}

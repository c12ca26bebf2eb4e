/**
 * The gateway itself, loaded by main.ts once V8's memory settings are in
 * place: reads the configuration, builds the parts, listens, wires shutdown.
 */
import { AmqpClient } from '../shared/amqp.js';
import { loadClusterSecret } from '../shared/cluster-secret.js';
import { ConfigError, loadDotEnv, loadGatewayConfig } from '../shared/config.js';
import { close, listen } from '../shared/http.js';
import { lanUrls } from '../shared/lan.js';
import { createLogger } from '../shared/logger.js';
import { NodeClient } from '../shared/node-client.js';
import { closeRedis, createRedis, createRedlock } from '../shared/redis.js';
import { writePidFile } from '../shared/pid-file.js';
import { describeMetadataStore, openMetadataStore } from '../shared/open-metadata-store.js';
import { join } from 'node:path';
import { createApp } from './http/app.js';
import { createS3App } from './s3/s3-app.js';
import { gatewayDeps } from './deps.js';
import { GatewayMetrics } from './metrics.js';
import { UploadSpool } from './upload/upload-spool.js';
import { trustProxyHazard } from './http/client-ip.js';
import { DownloadCounter } from './download/download-counter.js';
import { requestNodeCheck, resendHeldRepairs } from './cluster/repair-requests.js';
import { NodeRegistry } from './cluster/node-registry.js';
import { Replicator } from './cluster/replicator.js';
import { UploadSweeper } from './upload/upload-sweeper.js';
import { LayoutWatcher } from '../shared/layout-watcher.js';
import { requestRebalance } from '../shared/rebalance-progress.js';
import { RedisLocker } from './resumable/redis-locker.js';

loadDotEnv();
let config;
try {
  config = loadGatewayConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`gateway: ${err.message}`);
  process.exit(1);
}

const log = createLogger('gateway', config.logLevel, { format: config.logFormat });
const hazard = trustProxyHazard(config.server.host, config.urls.trustProxy);
if (hazard) log.warn({ host: config.server.host }, hazard);
const secret = loadClusterSecret(config.storageDir, config.clusterSecret);
const store = await openMetadataStore(config, log);
const client = new NodeClient({
  secret,
  timeoutMs: config.storageNodes.nodeTimeoutMs,
  readConnections: config.storageNodes.nodeReadConnections,
});
const redis = createRedis(config.redisConnection, log);
const counter = new DownloadCounter({ redlock: createRedlock(redis), store, log });
const amqp = new AmqpClient({
  urls: config.amqpUrls,
  prefix: config.clusterName,
  queueType: config.amqpQueueType,
  connectionName: config.server.gatewayId,
  log,
});
void amqp.start(); // uploads do not wait for RabbitMQ; deletions are scheduled once it is up
const layout = await LayoutWatcher.start({
  store,
  seed: config.nodes,
  pollMs: config.layoutPollMs,
  log,
});
const registry = new NodeRegistry(layout.nodes(), client, {
  redis,
  prefix: config.clusterName,
  schedule: config.storageNodes.probeSchedule,
  offlineAfter: config.storageNodes.offlineAfterFailures,
  log,
  onCheckNeeded: (node, why) => void requestNodeCheck({ amqp, log }, node, why),
});
await registry.start();
layout.onChange((next) => void registry.setNodes(next.nodes));
const replicator = new Replicator({
  client,
  registry,
  layout,
  copies: config.replication.replicationFactor,
  quorum: config.replication.writeQuorum,
  offlineGraceMs: config.storageNodes.nodeTimeoutMs,
  offPlacement: () => requestRebalance(redis, config.clusterName),
});
const spoolDir = join(config.storageDir, 'spool', config.server.gatewayId);
await UploadSpool.reset(spoolDir);
const sweeper = new UploadSweeper({
  store,
  replicator,
  log,
  gatewayId: config.server.gatewayId,
  pendingTimeoutMs: config.uploads.pendingUploadTimeoutSeconds * 1000,
});
sweeper.start();

// A connection of its own: one subscribed to the tus lock's release channel can do nothing else.
const tusSubscriber = createRedis(config.redisConnection, log);
const tusLocker = await RedisLocker.start({
  redlock: createRedlock(redis),
  redis,
  subscriber: tusSubscriber,
  prefix: config.clusterName,
  log,
});

const parts = gatewayDeps(config, {
  store,
  client,
  registry,
  layout,
  replicator,
  counter,
  redis,
  amqp,
  log,
  spoolDir,
  secret,
  tusLocker,
});
// One registry for both ports: GET /metrics on the main port reports the S3 API too.
const deps = { ...parts, metrics: new GatewayMetrics(parts) };
// Repairs asked for while RabbitMQ was away go out at every reconnect (not inside the
// connect itself, which waits for its listeners).
await amqp.onChannel(async () => {
  setImmediate(() => void resendHeldRepairs(deps));
});
const app = createApp(deps);
const server = await listen(app, config.server.host, config.server.port);
// The S3-compatible API, on its own port: only when S3_PORT is set.
const { s3Host, s3Port } = config.s3;
let s3Server: Awaited<ReturnType<typeof listen>> | undefined;
if (s3Port !== undefined) {
  s3Server = await listen(createS3App(deps), s3Host, s3Port);
  log.info({ urls: lanUrls(s3Host, s3Port) }, 'S3 API listening');
}
writePidFile(config.storageDir, config.server.pidName);
log.info(
  {
    urls: lanUrls(config.server.host, config.server.port),
    nodes_online: registry.onlineCount(),
    db: describeMetadataStore(config),
  },
  'gateway listening',
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    log.info({ signal }, 'shutting down');
    layout.stop();
    await registry.stop();
    sweeper.stop();
    await Promise.all([close(server), s3Server && close(s3Server)]);
    await amqp.close();
    closeRedis(redis);
    closeRedis(tusSubscriber);
    await client.close();
    await store.close();
    process.exit(0);
  });
}

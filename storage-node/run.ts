/**
 * The storage node itself, loaded by main.ts once V8's memory settings are in
 * place: reads the configuration, opens the store, listens, wires shutdown.
 */
import { loadClusterSecret } from '../shared/cluster-secret.js';
import { ConfigError, loadDotEnv, loadNodeConfig } from '../shared/config.js';
import { close, listen } from '../shared/http.js';
import { createLogger } from '../shared/logger.js';
import { NodeClient } from '../shared/node-client.js';
import { writePidFile } from '../shared/pid-file.js';
import { createApp } from './app.js';
import { StagingStore } from './staging-store.js';
import { FsBlobStore } from './blob-store.js';
import { Scrubber } from './scrubber.js';

loadDotEnv();
let config;
try {
  config = loadNodeConfig(process.env, process.argv.slice(2));
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`storage-node: ${err.message}`);
  process.exit(1);
}

const log = createLogger(config.nodeId, config.logLevel, { format: config.logFormat });
const secret = loadClusterSecret(config.storageDir, config.clusterSecret);
const store = await FsBlobStore.open(config.nodeDataDir, { log });
const staging = await StagingStore.open(config.nodeDataDir, store, log);
const client = new NodeClient({ secret, timeoutMs: config.nodeTimeoutMs });
const scrubber = new Scrubber({
  store,
  log,
  intervalSeconds: config.scrubIntervalSeconds,
  bytesPerSecond: config.scrubBytesPerSecond,
});
const server = await listen(
  createApp({
    id: config.nodeId,
    secret,
    store,
    staging,
    client,
    log,
    scrubStatus: () => scrubber.status(),
    startScrub: () => scrubber.startNow(),
  }),
  config.nodeHost,
  config.nodePort,
);
writePidFile(config.storageDir, config.nodeId);
const usage = await store.usage();
log.info(
  {
    url: `http://${config.nodeHost}:${config.nodePort}`,
    dataDir: config.nodeDataDir,
    objects: usage.objects,
  },
  'storage node listening',
);
scrubber.start();

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    log.info({ signal }, 'shutting down');
    await scrubber.stop();
    await close(server);
    await client.close();
    await store.close();
    await staging.close();
    process.exit(0);
  });
}

/** Worker entry point: `npm run worker`. Consumes jobs and runs the expiry sweep. */
import { AmqpClient } from '../shared/amqp.js';
import { loadClusterSecret } from '../shared/cluster-secret.js';
import { ConfigError, loadDotEnv, loadWorkerConfig } from '../shared/config.js';
import { fileDeleteJob } from '../shared/jobs.js';
import { createLogger } from '../shared/logger.js';
import { NodeClient } from '../shared/node-client.js';
import { writePidFile } from '../shared/pid-file.js';
import { SqliteMetadataStore, openDatabase } from '../shared/sqlite-metadata-store.js';
import { ExpirySweep } from './expiry-sweep.js';
import { FileDeleter } from './file-deleter.js';
import { JobConsumer, jobHandler } from './job-consumer.js';

loadDotEnv();
let config;
try {
  config = loadWorkerConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`worker: ${err.message}`);
  process.exit(1);
}

const log = createLogger('worker', config.logLevel).child({ worker: config.workerId });
const secret = loadClusterSecret(config.storageDir, config.clusterSecret);
const store = new SqliteMetadataStore(openDatabase(config.dbPath));
const client = new NodeClient({ secret, timeoutMs: config.nodeTimeoutMs });
const amqp = new AmqpClient({
  url: config.amqpUrl,
  prefix: config.queuePrefix,
  connectionName: config.workerId,
  log,
});

const deleter = new FileDeleter({
  store,
  client,
  nodes: config.nodes,
  amqp,
  log,
  graceMs: config.deleteGraceMs,
});
const consumer = new JobConsumer(
  amqp,
  [
    jobHandler({
      queue: amqp.names.fileDelete,
      schema: fileDeleteJob,
      handle: (job) => deleter.handle(job),
    }),
  ],
  { prefetch: config.prefetch, attempts: config.jobAttempts, log },
);
const sweep = new ExpirySweep({
  store,
  deleter,
  log,
  graceMs: config.deleteGraceMs,
  retentionMs: config.tombstoneRetentionMs,
  schedule: config.sweepSchedule,
});

await consumer.start();
sweep.start(); // runs from the database alone, so it works even while RabbitMQ is down
void amqp.start();
writePidFile(config.storageDir, 'worker');
log.info(
  { db: config.dbPath, sweep: config.sweepSchedule, prefetch: config.prefetch },
  'worker started',
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    log.info({ signal }, 'shutting down');
    await sweep.stop();
    await consumer.stop(15_000);
    await amqp.close();
    await client.close();
    await store.close();
    process.exit(0);
  });
}

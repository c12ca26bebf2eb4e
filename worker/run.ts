/**
 * The worker itself, loaded by main.ts once V8's memory settings are in place:
 * consumes jobs and runs the expiry, repair and processing sweeps.
 */
import { AmqpClient } from '../shared/amqp.js';
import { loadClusterSecret } from '../shared/cluster-secret.js';
import { ConfigError, loadDotEnv, loadWorkerConfig } from '../shared/config.js';
import { join } from 'node:path';
import { fileDeleteJob, imageProcessJob, nodeCheckJob, replicaRepairJob } from '../shared/jobs.js';
import { createLogger } from '../shared/logger.js';
import { NodeClient } from '../shared/node-client.js';
import { writePidFile } from '../shared/pid-file.js';
import { closeRedis, createRedis, createRedlock } from '../shared/redis.js';
import { describeMetadataStore, openMetadataStore } from '../shared/open-metadata-store.js';
import { LayoutWatcher } from '../shared/layout-watcher.js';
import { AntiEntropy } from './anti-entropy.js';
import { ByteRate } from './byte-rate.js';
import { ExpirySweep } from './expiry-sweep.js';
import { FileDeleter } from './file-deleter.js';
import { ImageProcessor } from './image-processor.js';
import { configureSharp } from './image-variants.js';
import { JobConsumer, jobHandler } from './job-consumer.js';
import { every } from './periodic.js';
import { ProcessingSweep } from './processing-sweep.js';
import { RepairSweep } from './repair-sweep.js';
import { ResumableSweep } from './resumable-sweep.js';
import { RepairQueue } from '../shared/repair-queue.js';
import { ReplicaRepairer } from './replica-repairer.js';
import { Rebalancer } from './rebalancer.js';
import { Slots } from './slots.js';
import { VariantWriter } from './variant-writer.js';
import { WorkerMetrics, serveMetrics } from './metrics.js';
import { close } from '../shared/http.js';

loadDotEnv();
let config;
try {
  config = loadWorkerConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`worker: ${err.message}`);
  process.exit(1);
}

const log = createLogger('worker', config.logLevel, { format: config.logFormat }).child({
  worker: config.workerId,
});
const secret = loadClusterSecret(config.storageDir, config.clusterSecret);
const store = await openMetadataStore(config, log);
const client = new NodeClient({ secret, timeoutMs: config.nodeTimeoutMs });
const amqp = new AmqpClient({
  urls: config.amqpUrls,
  prefix: config.clusterName,
  queueType: config.amqpQueueType,
  connectionName: config.workerId,
  log,
});

const layout = await LayoutWatcher.start({
  store,
  seed: config.nodes,
  pollMs: config.layoutPollMs,
  log,
});
const deleter = new FileDeleter({
  store,
  client,
  layout,
  amqp,
  log,
  graceMs: config.deleteGraceMs,
});
const redis = createRedis(config.redisConnection, log);
const repairer = new ReplicaRepairer({
  store,
  client,
  layout,
  redis,
  redlock: createRedlock(redis),
  rate: new ByteRate(config.repairBytesPerSecond),
  log,
  prefix: config.clusterName,
});
const metrics = new WorkerMetrics({ amqp });
const rebalancer = new Rebalancer({
  store,
  client,
  layout,
  redis,
  redlock: createRedlock(redis),
  log,
  prefix: config.clusterName,
  copies: config.replicationFactor,
  bytes: new ByteRate(config.rebalanceBytesPerSecond),
  objects: new ByteRate(config.rebalanceObjectsPerSecond),
  concurrency: config.rebalanceConcurrency,
  repair: (fileId, key) => repairs.request(fileId, key),
  metrics,
});
const repairs = new RepairQueue({
  redis,
  prefix: config.clusterName,
  publish: (job) => amqp.publish(amqp.names.replicaRepair, job),
});
const repair = async (fileId: string, key: string) => {
  await repairs.request(fileId, key);
};
const antiEntropy = new AntiEntropy({
  store,
  client,
  layout,
  log,
  orphanGraceMs: config.orphanGraceMs,
  repair,
});
configureSharp();
const imageTmpDir = join(config.storageDir, 'tmp', 'images');
// Twice the time limit: older entries cannot belong to a job still running on this host.
await ImageProcessor.prepare(imageTmpDir, 2 * config.imageJobTimeoutMs);
const images = new ImageProcessor({
  store,
  client,
  layout,
  writer: new VariantWriter({
    client,
    layout,
    copies: config.replicationFactor,
    quorum: config.writeQuorum,
    log,
  }),
  slots: new Slots(config.imageConcurrency),
  log,
  maxInputPixels: config.maxInputPixels,
  timeoutMs: config.imageJobTimeoutMs,
  tmpDir: imageTmpDir,
  repair,
  queueCompressed: (fileId) => amqp.publish(amqp.names.imageCompress, { fileId }),
});
const consumer = new JobConsumer(
  amqp,
  [
    jobHandler({
      queue: amqp.names.fileDelete,
      schema: fileDeleteJob,
      handle: (job) => deleter.handle(job),
    }),
    jobHandler({
      queue: amqp.names.replicaRepair,
      schema: replicaRepairJob,
      handle: async (job) => {
        await repairs.taken(job.key); // a request from now on must queue a new repair
        await repairer.handle(job);
      },
    }),
    jobHandler({
      queue: amqp.names.nodeCheck,
      schema: nodeCheckJob,
      handle: (job) => antiEntropy.handle(job),
    }),
    jobHandler({
      queue: amqp.names.imageProcess,
      schema: imageProcessJob,
      handle: (job) => images.handle(job),
    }),
    jobHandler({
      queue: amqp.names.imageCompress,
      schema: imageProcessJob,
      handle: (job) => images.handleCompressed(job),
    }),
  ],
  { prefetch: config.workerPrefetch, attempts: config.jobAttempts, log, metrics },
);
const sweep = new ExpirySweep({
  store,
  deleter,
  log,
  graceMs: config.deleteGraceMs,
  retentionMs: config.tombstoneRetentionMs,
});

const resumableSweep = new ResumableSweep({
  store,
  client,
  nodes: () => layout.nodes(),
  log,
});

const repairSweep = new RepairSweep({
  store,
  amqp,
  layout,
  log,
  repair: (fileId, key) => repairs.request(fileId, key),
});
const processingSweep = new ProcessingSweep({
  store,
  amqp,
  log,
  // Well past a job's time limit, so a job still at work is rarely queued twice.
  staleMs: Math.max(5 * 60_000, 2 * config.imageJobTimeoutMs),
});

// Before the jobs, so a worker that consumes is already scrapeable.
const metricsServer = await serveMetrics(metrics.registry, {
  host: config.workerMetricsHost,
  port: config.workerMetricsPort,
  log,
});
await consumer.start();
const tasks = [
  // Runs from the database alone, so it works even while RabbitMQ is down.
  every(config.sweepSchedule, 'expiry sweep', log, async () => {
    const done = await sweep.run();
    metrics.sweepDone(done);
    if (done.expired + done.cleaned + done.purged > 0) log.info(done, 'expiry sweep');
    const uploads = await resumableSweep.run();
    if (uploads.expired + uploads.removed + uploads.owed > 0)
      log.info(uploads, 'resumable uploads swept');
  }),
  every(config.repairSchedule, 'repair sweep', log, () => repairSweep.run()),
  every(config.rebalanceSchedule, 'rebalance', log, () => rebalancer.run('scheduled')),
  every(config.repairSchedule, 'processing sweep', log, async () => {
    await processingSweep.run();
  }),
];
// A new layout version starts a pass at once; a pass cut short resumes; one that left work is retried.
layout.onChange((next) => void rebalancer.run(`layout ${next.version}`));
const rebalanceCheck = setInterval(() => void rebalancer.runIfDue().catch(() => undefined), 5000);
rebalanceCheck.unref();
void rebalancer.runIfDue().catch(() => undefined);
void amqp.start();
writePidFile(config.storageDir, 'worker');
log.info(
  {
    db: describeMetadataStore(config),
    sweep: config.sweepSchedule,
    prefetch: config.workerPrefetch,
  },
  'worker started',
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    log.info({ signal }, 'shutting down');
    for (const task of tasks) await task.stop();
    layout.stop();
    clearInterval(rebalanceCheck);
    await consumer.stop(15_000);
    if (metricsServer) await close(metricsServer, 1000);
    await amqp.close();
    closeRedis(redis);
    await client.close();
    await store.close();
    process.exit(0);
  });
}

/**
 * The worker's metrics (docs/metrics.md): jobs done, failed and retried per
 * kind with their durations, what the expiry sweep did, and, at scrape time,
 * the depth of every work queue. The worker has no API, so a small HTTP
 * server of its own serves them (WORKER_METRICS_PORT, see worker/run.ts).
 */
import type { ServerType } from '@hono/node-server';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AmqpClient } from '../shared/amqp.js';
import { listen } from '../shared/http.js';
import { workQueues } from '../shared/jobs.js';
import type { Logger } from '../shared/logger.js';
import type { RebalanceMetrics } from './rebalancer.js';
import { createMetricsApp, createRegistry, METRIC_PREFIX as P } from '../shared/metrics.js';

/** What the job consumer reports (worker/job-consumer.ts). */
export interface JobMetrics {
  /** A job ran to its end and was acknowledged. */
  jobDone(queue: string, seconds: number): void;
  /** A job was dead-lettered: it failed its last try, or could not be parsed. */
  jobFailed(queue: string, seconds: number): void;
  /** A try of a job failed and another will follow. */
  jobRetried(queue: string): void;
  /** A job failed for a reason that may pass (a 503, a full disk) and was queued again for later. */
  jobDeferred(queue: string, seconds: number): void;
}

/**
 * The kind of job a work queue holds: its name without the cluster prefix
 * (`trove.images.process` → `images.process`). CLUSTER_NAME has no dots, so
 * the prefix ends at the first one.
 */
export function jobKind(queue: string): string {
  return queue.slice(queue.indexOf('.') + 1);
}

/** Seconds from a job's delivery to its outcome, retries and their backoff included. */
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export class WorkerMetrics implements JobMetrics, RebalanceMetrics {
  readonly registry: Registry = createRegistry();

  private readonly jobs = new Counter({
    name: `${P}jobs_total`,
    help: 'Jobs finished, by kind (files.delete, replicas.repair, nodes.check, images.process, …) and outcome: done (acknowledged) or failed (dead-lettered after its last try, or malformed)',
    labelNames: ['job', 'outcome'],
    registers: [this.registry],
  });
  private readonly retries = new Counter({
    name: `${P}job_retries_total`,
    help: 'Failed tries of jobs that were then tried again, by kind',
    labelNames: ['job'],
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: `${P}job_duration_seconds`,
    help: "Time from a job's delivery to its outcome (retries and backoff included), by kind and outcome",
    labelNames: ['job', 'outcome'],
    buckets: JOB_BUCKETS,
    registers: [this.registry],
  });
  private readonly swept = new Counter({
    name: `${P}expiry_sweep_files_total`,
    help: 'Files the expiry sweep handled, by action: expired (made tombstones), cleaned (blobs removed), purged (tombstones forgotten)',
    labelNames: ['action'],
    registers: [this.registry],
  });

  private readonly rebalanced = new Counter({
    name: `${P}rebalance_replicas_total`,
    help: 'Replicas the rebalance changed, by action: moved (copied to the node the layout places them on, sha256 checked) or removed (a surplus replica deleted once the placement held every copy)',
    labelNames: ['action'],
    registers: [this.registry],
  });
  private readonly rebalancedBytes = new Counter({
    name: `${P}rebalance_bytes_total`,
    help: 'Bytes the rebalance copied to the nodes the layout places them on',
    registers: [this.registry],
  });

  constructor(deps: { amqp: AmqpClient }) {
    const { amqp } = deps;
    // Every kind starts at 0, so rate() and alerts see it before its first job.
    for (const action of ['moved', 'removed']) this.rebalanced.inc({ action }, 0);
    for (const queue of workQueues(amqp.names)) {
      for (const outcome of ['done', 'failed']) this.jobs.inc({ job: jobKind(queue), outcome }, 0);
      this.retries.inc({ job: jobKind(queue) }, 0);
    }
    new Gauge({
      name: `${P}queue_depth`,
      help: 'Messages waiting in each work queue and in the dead-letter queue, at scrape time (absent while RabbitMQ is unreachable)',
      labelNames: ['queue'],
      registers: [this.registry],
      async collect() {
        const queues = [...workQueues(amqp.names), amqp.names.deadLetters];
        const depths = await Promise.all(queues.map((q) => amqp.depth(q)));
        this.reset();
        queues.forEach((q, i) => {
          const depth = depths[i];
          if (depth !== null && depth !== undefined) this.set({ queue: jobKind(q) }, depth);
        });
      },
    });
  }

  jobDone(queue: string, seconds: number): void {
    this.finished(queue, 'done', seconds);
  }

  jobFailed(queue: string, seconds: number): void {
    this.finished(queue, 'failed', seconds);
  }

  jobRetried(queue: string): void {
    this.retries.inc({ job: jobKind(queue) });
  }

  jobDeferred(queue: string, seconds: number): void {
    this.finished(queue, 'deferred', seconds);
  }

  /** One expiry sweep's figures. */
  sweepDone(done: { expired: number; cleaned: number; purged: number }): void {
    for (const action of ['expired', 'cleaned', 'purged'] as const)
      if (done[action] > 0) this.swept.inc({ action }, done[action]);
  }

  replicaMoved(bytes: number): void {
    this.rebalanced.inc({ action: 'moved' });
    this.rebalancedBytes.inc(bytes);
  }

  replicaRemoved(): void {
    this.rebalanced.inc({ action: 'removed' });
  }

  private finished(queue: string, outcome: 'done' | 'failed' | 'deferred', seconds: number): void {
    const labels = { job: jobKind(queue), outcome };
    this.jobs.inc(labels);
    this.duration.observe(labels, seconds);
  }
}

/**
 * Serves GET /metrics and GET /health of `registry` on host:port; undefined
 * when port is 0 (off). A port already taken (a second worker on one host
 * with the default) costs the metrics, not the jobs: logged, and the worker
 * carries on.
 */
export async function serveMetrics(
  registry: Registry,
  o: { host: string; port: number; log: Logger },
): Promise<ServerType | undefined> {
  if (o.port === 0) return undefined;
  try {
    const server = await listen(createMetricsApp(registry), o.host, o.port);
    o.log.info({ url: `http://${o.host}:${o.port}/metrics` }, 'metrics listening');
    return server;
  } catch (err) {
    o.log.error(
      { err: (err as Error).message, port: o.port },
      'metrics server could not listen (set WORKER_METRICS_PORT to a free port, or 0); running without it',
    );
    return undefined;
  }
}

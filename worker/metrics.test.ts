import { describe, expect, it } from 'vitest';
import { metricValue, matching, parseMetrics } from '../test/metrics-text.js';
import { AmqpClient } from '../shared/amqp.js';
import { createLogger } from '../shared/logger.js';
import { WorkerMetrics, jobKind } from './metrics.js';

/** A client never started: no connection, so queue depths are unknown. */
const offline = () =>
  new AmqpClient({
    urls: ['amqp://guest:guest@127.0.0.1:1'],
    prefix: 'trove-unit',
    queueType: 'classic',
    connectionName: 'metrics-test',
    log: createLogger('test', 'silent'),
  });

describe('jobKind', () => {
  it('is the work queue without the cluster prefix', () => {
    expect(jobKind('trove.images.process')).toBe('images.process');
    expect(jobKind('trove-test-1a2b.files.delete')).toBe('files.delete');
  });
});

describe('WorkerMetrics', () => {
  it('counts outcomes, retries and durations per kind of job', async () => {
    const amqp = offline();
    const m = new WorkerMetrics({ amqp });
    m.jobDone(amqp.names.imageProcess, 0.3);
    m.jobDone(amqp.names.imageProcess, 2);
    m.jobRetried(amqp.names.replicaRepair);
    m.jobFailed(amqp.names.replicaRepair, 7);
    m.sweepDone({ expired: 2, cleaned: 0, purged: 1 });
    const s = parseMetrics(await m.registry.metrics());

    const images = { job: 'images.process' };
    expect(metricValue(s, 'trove_jobs_total', { ...images, outcome: 'done' })).toBe(2);
    expect(metricValue(s, 'trove_jobs_total', { ...images, outcome: 'failed' })).toBe(0);
    expect(metricValue(s, 'trove_job_duration_seconds_sum', images)).toBeCloseTo(2.3);
    expect(
      metricValue(s, 'trove_job_duration_seconds_bucket', { ...images, outcome: 'done', le: '1' }),
    ).toBe(1);
    const repair = { job: 'replicas.repair' };
    expect(metricValue(s, 'trove_jobs_total', { ...repair, outcome: 'failed' })).toBe(1);
    expect(metricValue(s, 'trove_job_retries_total', repair)).toBe(1);
    expect(metricValue(s, 'trove_expiry_sweep_files_total', { action: 'expired' })).toBe(2);
    expect(metricValue(s, 'trove_expiry_sweep_files_total', { action: 'purged' })).toBe(1);
    // Every kind is there from the start, at 0.
    expect(matching(s, 'trove_jobs_total', { job: 'nodes.check', outcome: 'done' })).toHaveLength(
      1,
    );
  });

  it('leaves queue depths out while RabbitMQ is unreachable, rather than report 0', async () => {
    const m = new WorkerMetrics({ amqp: offline() });
    const s = parseMetrics(await m.registry.metrics());
    expect(matching(s, 'trove_queue_depth')).toHaveLength(0);
  });
});

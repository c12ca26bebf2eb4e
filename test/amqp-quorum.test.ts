/**
 * RabbitMQ for several hosts, against the real broker: quorum queues
 * (AMQP_QUEUE_TYPE=quorum) with their arguments, the delay ladder and the
 * dead-letter queue working through them, the refusal of a type switch in
 * place, and AMQP_URLS trying its nodes in turn. Every test declares its own
 * CLUSTER_NAME, and the queues are deleted afterwards.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import amqp from 'amqplib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AmqpClient, deleteTopology } from '../shared/amqp.js';
import {
  ladderStep,
  ladderSteps,
  LADDER_BASE_MS,
  QUORUM_DELIVERY_LIMIT,
  topologyNames,
  workQueues,
  type QueueType,
} from '../shared/jobs.js';
import { createLogger } from '../shared/logger.js';
import { UnavailableError } from '../shared/errors.js';
import {
  DEFERRALS_HEADER,
  JobConsumer,
  MAX_DEFERRALS,
  deferralDelayMs,
  jobHandler,
} from '../worker/job-consumer.js';
import { z } from 'zod';
import { freePort, logLines, queryDb, startCluster, waitFor } from './harness.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

const prefixes: string[] = [];
const clients: AmqpClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  for (const prefix of prefixes) await deleteTopology(AMQP_URL, prefix).catch(() => undefined);
});

function newPrefix(): string {
  const prefix = `trove-qq-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
  return prefix;
}

/** Log lines (parsed JSON) of a client, as it wrote them. */
type Lines = Record<string, unknown>[];

function client(prefix: string, queueType: QueueType, urls = [AMQP_URL]) {
  const lines: Lines = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger('amqp-quorum-test', 'info', { format: 'json', stream });
  const c = new AmqpClient({ urls, prefix, queueType, connectionName: 'test', log });
  clients.push(c);
  return { client: c, lines };
}

interface QueueInfo {
  type: string;
  args: Record<string, unknown>;
}

/** Type and arguments of every queue of `prefix`, as the broker reports them. */
function brokerQueues(prefix: string): Map<string, QueueInfo> {
  const out = execFileSync(
    'rabbitmqctl',
    ['list_queues', '-q', 'name', 'type', 'arguments', '--formatter', 'json'],
    { encoding: 'utf8' },
  );
  const rows = JSON.parse(out) as { name: string; type: string; arguments: unknown[][] }[];
  return new Map(
    rows
      .filter((r) => r.name.startsWith(`${prefix}.`))
      .map((r) => [
        r.name,
        { type: r.type, args: Object.fromEntries(r.arguments.map(([k, , v]) => [k, v])) },
      ]),
  );
}

describe('quorum queues', () => {
  it('declares every queue as a quorum queue: a delivery limit on work queues, at-least-once dead-lettering on the ladder', async () => {
    const prefix = newPrefix();
    const n = topologyNames(prefix);
    const { client: c } = client(prefix, 'quorum');
    await c.start();
    const queues = brokerQueues(prefix);
    expect(queues.size).toBe(1 + workQueues(n).length + ladderSteps.length);
    for (const [name, q] of queues) expect(q.type, name).toBe('quorum');
    expect(queues.get(n.deadLetters)!.args).toEqual({ 'x-queue-type': 'quorum' });
    for (const queue of workQueues(n))
      expect(queues.get(queue)!.args).toEqual({
        'x-queue-type': 'quorum',
        'x-delivery-limit': QUORUM_DELIVERY_LIMIT,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': n.deadLetters,
      });
    for (const step of ladderSteps)
      expect(queues.get(n.delayQueue(step))!.args).toEqual({
        'x-queue-type': 'quorum',
        'x-message-ttl': step,
        'x-dead-letter-exchange': n.jobs,
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      });
  });

  it('keeps classic queues declared exactly as before', async () => {
    const prefix = newPrefix();
    const n = topologyNames(prefix);
    const { client: c } = client(prefix, 'classic');
    await c.start();
    const queues = brokerQueues(prefix);
    for (const [name, q] of queues) expect(q.type, name).toBe('classic');
    expect(queues.get(n.deadLetters)!.args).toEqual({});
    for (const queue of workQueues(n))
      expect(queues.get(queue)!.args).toEqual({
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': n.deadLetters,
      });
    for (const step of ladderSteps)
      expect(queues.get(n.delayQueue(step))!.args).toEqual({
        'x-message-ttl': step,
        'x-dead-letter-exchange': n.jobs,
      });
  });

  it('delivers a delayed job on time through the quorum delay ladder', async () => {
    const prefix = newPrefix();
    const n = topologyNames(prefix);
    const { client: c } = client(prefix, 'quorum');
    await c.start();
    expect(brokerQueues(prefix).get(n.delayQueue(1000))!.type).toBe('quorum');

    // The worker's part of the ladder: a job still early goes down the ladder again.
    const arrived: number[] = [];
    await c.onChannel(async (ch) => {
      await ch.consume(n.fileDelete, (msg) => {
        if (!msg) return;
        const job = JSON.parse(msg.content.toString()) as { due: number };
        if (Date.now() < job.due)
          void c.publish(n.fileDelete, job, { due: job.due }).then(() => ch.ack(msg));
        else {
          arrived.push(Date.now() - job.due);
          ch.ack(msg);
        }
      });
    });
    const due = Date.now() + 2300;
    await c.publish(n.fileDelete, { due }, { due });
    await waitFor('the delayed job', async () => arrived.length === 1, 10_000);
    // Never early; late by at most the smallest step (and some scheduling).
    expect(arrived[0]).toBeGreaterThanOrEqual(0);
    expect(arrived[0]).toBeLessThan(LADDER_BASE_MS + 400);
  });

  it('sends a job that failed its last try to the quorum dead-letter queue', async () => {
    const prefix = newPrefix();
    const n = topologyNames(prefix);
    const { client: c } = client(prefix, 'quorum');
    await c.start();
    expect(brokerQueues(prefix).get(n.deadLetters)!.type).toBe('quorum');
    let tries = 0;
    const consumer = new JobConsumer(
      c,
      [
        jobHandler({
          queue: n.nodeCheck,
          schema: z.object({ node: z.string() }),
          handle: async () => {
            tries++;
            throw new Error('node on fire');
          },
        }),
      ],
      { prefetch: 1, attempts: 2, retryDelayMs: 10, log: createLogger('qq', 'silent') },
    );
    await consumer.start();
    await c.publish(n.nodeCheck, { node: 'node9' });
    await waitFor('the dead letter', async () => (await c.depth(n.deadLetters)) === 1);
    await consumer.stop(1000);
    expect(tries).toBe(2);
    const conn = await amqp.connect(AMQP_URL);
    try {
      const ch = await conn.createChannel();
      const msg = await ch.get(n.deadLetters, { noAck: true });
      expect(msg && JSON.parse(msg.content.toString())).toEqual({ node: 'node9' });
      expect(msg && msg.properties.headers?.['x-death']?.[0]?.reason).toBe('rejected');
    } finally {
      await conn.close();
    }
  });

  it('puts off a job that fails for a reason that may pass, and runs it later; gives it up after MAX_DEFERRALS', async () => {
    const prefix = newPrefix();
    const n = topologyNames(prefix);
    const { client: c } = client(prefix, 'quorum');
    await c.start();
    const runs: { node: string; at: number }[] = [];
    let databaseDown = true;
    const consumer = new JobConsumer(
      c,
      [
        jobHandler({
          queue: n.nodeCheck,
          schema: z.object({ node: z.string() }),
          handle: async (job) => {
            runs.push({ node: job.node, at: Date.now() });
            if (databaseDown || job.node === 'always-down')
              throw new UnavailableError(
                'the metadata database is unavailable',
                'DATABASE_UNAVAILABLE',
              );
          },
        }),
      ],
      { prefetch: 1, attempts: 2, retryDelayMs: 10, log: createLogger('qq', 'silent') },
    );
    await consumer.start();
    const sent = Date.now();
    await c.publish(n.nodeCheck, { node: 'node9' });
    await waitFor('two tries', async () => runs.length === 2);
    databaseDown = false; // the outage ends while the job waits on the ladder
    await waitFor('the job run again', async () => runs.length === 3, 15_000);
    // Put off by about deferralDelayMs(0) (the ladder's step below it, at least), not dead-lettered.
    expect(runs[2]!.at - sent).toBeGreaterThanOrEqual(ladderStep(deferralDelayMs(0))!);
    expect(await c.depth(n.deadLetters)).toBe(0);

    // One already put off MAX_DEFERRALS times goes to the dead letters at its last try.
    await c.publish(
      n.nodeCheck,
      { node: 'always-down' },
      { headers: { [DEFERRALS_HEADER]: String(MAX_DEFERRALS) } },
    );
    await waitFor('the dead letter', async () => (await c.depth(n.deadLetters)) === 1);
    await consumer.stop(1000);
  });

  it('names the way out when the queues exist with the other type', async () => {
    const prefix = newPrefix();
    const classic = client(prefix, 'classic');
    await classic.client.start();
    await classic.client.close();

    const { client: c, lines } = client(prefix, 'quorum');
    const started = c.start();
    const refusal = await waitFor('the refusal logged', async () =>
      lines.find((l) => l.level === 50),
    );
    expect(refusal.msg).toMatch(/PRECONDITION_FAILED/);
    expect(refusal.msg).toMatch(/AMQP_QUEUE_TYPE/);
    expect(refusal.msg).toMatch(/CLUSTER_NAME/);
    expect(refusal.msg).toMatch(/delete the old queues/);
    expect(c.connected).toBe(false);
    await c.close();
    await started;
    // Nothing was changed: the queues are still classic.
    expect(brokerQueues(prefix).get(topologyNames(prefix).deadLetters)!.type).toBe('classic');
  });
});

describe('AMQP_URLS', () => {
  it('connects through the second URL when the first refuses, and says which', async () => {
    const closed = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
    const prefix = newPrefix();
    const { client: c, lines } = client(prefix, 'classic', [closed, AMQP_URL]);
    await c.start();
    expect(c.connected).toBe(true);
    const tried = lines.find((l) => l.msg === 'RabbitMQ not reachable, retrying');
    expect(tried?.err).toContain(closed.replace('guest:guest@', ''));
    const connected = lines.find((l) => l.msg === 'RabbitMQ connected');
    expect(connected?.url).toBe(new URL(AMQP_URL.replace(/\/\/[^@]*@/, '//')).toString());
    expect(JSON.stringify(lines)).not.toContain('guest:guest');
  });

  it('runs a cluster on quorum queues through AMQP_URLS: an expired file is deleted', async () => {
    const closed = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
    const cluster = await startCluster({
      worker: true,
      env: {
        AMQP_QUEUE_TYPE: 'quorum',
        AMQP_URLS: `${closed},${AMQP_URL}`,
        // The sweep effectively off: what deletes the file is its delayed job.
        SWEEP_SCHEDULE: '59 59 * * * *',
        // A picture, but no image jobs to wait for.
        ALLOWED_TYPES: 'application/pdf',
      },
    });
    try {
      const n = topologyNames(cluster.clusterName);
      expect(brokerQueues(cluster.clusterName).get(n.fileDelete)?.type).toBe('quorum');
      const res = await fetch(`${cluster.gatewayUrl}/upload/q.pdf?ttl=2`, {
        method: 'PUT',
        body: Buffer.from(`%PDF-1.4\n% ${randomBytes(8).toString('hex')}\n%%EOF\n`),
      });
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as { id: string };
      const replicas = () => queryDb(cluster, `SELECT node FROM replicas WHERE file_id = '${id}'`);
      expect(replicas().length).toBeGreaterThan(0);
      await waitFor('every copy deleted by its delayed job', async () => replicas().length === 0);
      const connected = logLines(cluster, 'worker', (l) => l.msg === 'RabbitMQ connected');
      expect(connected[0]?.url).toMatch(/:5672\/?$/);
    } finally {
      await cluster.stop();
    }
  });
});

import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { ReplicaRepairJob } from '../shared/jobs.js';
import { RepairQueue } from '../shared/repair-queue.js';
import type { JobPublisher } from '../shared/amqp.js';
import { createLogger } from '../shared/logger.js';
import { requestRepair, resendHeldRepairs } from '../gateway/cluster/repair-requests.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
afterAll(async () => {
  const keys = await redis.keys('test-repairq-*');
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

/** A queue over the real Redis, under a prefix of its own, recording what it publishes. */
function queue(opts: { failPublish?: boolean | (() => boolean); markTtlSeconds?: number } = {}) {
  const published: ReplicaRepairJob[] = [];
  const prefix = `test-repairq-${randomBytes(4).toString('hex')}`;
  const repairs = new RepairQueue({
    redis,
    prefix,
    markTtlSeconds: opts.markTtlSeconds,
    async publish(job) {
      const fail = typeof opts.failPublish === 'function' ? opts.failPublish() : opts.failPublish;
      if (fail) throw new Error('broker down');
      published.push(job);
    },
  });
  return { repairs, published, prefix };
}

describe('RepairQueue (real Redis)', () => {
  it('queues a blob once while its repair waits, and again once a worker took it', async () => {
    const { repairs, published } = queue();
    expect(await repairs.request('f1', 'f1')).toBe(true);
    expect(await repairs.request('f1', 'f1')).toBe(false);
    expect(await repairs.request('f1', 'f1.thumb')).toBe(true); // another blob of the file
    expect(published).toEqual([
      { fileId: 'f1', key: 'f1' },
      { fileId: 'f1', key: 'f1.thumb' },
    ]);

    await repairs.taken('f1');
    expect(await repairs.request('f1', 'f1')).toBe(true);
    expect(published).toHaveLength(3);
  });

  it('folds a burst of concurrent requests into one job', async () => {
    const { repairs, published } = queue();
    const results = await Promise.all(
      Array.from({ length: 50 }, () => repairs.request('f2', 'f2')),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(published).toHaveLength(1);
  });

  it('leaves no mark when the publish failed, so the next request queues it', async () => {
    const failing = queue({ failPublish: true });
    await expect(failing.repairs.request('f3', 'f3')).rejects.toThrow('broker down');
    expect(await redis.exists(`${failing.prefix}:repair:queued:f3`)).toBe(0);
  });

  it('lets the mark expire, so a lost message is queued again', async () => {
    const { repairs, published, prefix } = queue({ markTtlSeconds: 1 });
    await repairs.request('f4', 'f4');
    expect(await redis.ttl(`${prefix}:repair:queued:f4`)).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1200));
    expect(await repairs.request('f4', 'f4')).toBe(true);
    expect(published).toHaveLength(2);
  });

  it('holds the repairs asked for while RabbitMQ is away, and sends them once it is back', async () => {
    let up = false;
    const { repairs, published } = queue({ failPublish: () => !up });
    const amqp = { connected: false } as { connected: boolean } & JobPublisher;
    const deps = { amqp, repairs, log: createLogger('test', 'silent') };
    await requestRepair(deps, 'f1'); // not connected: held at once
    amqp.connected = true;
    await requestRepair(deps, 'f2'); // connected, but the publish fails: held too
    expect(published).toEqual([]);
    expect(repairs.heldCount).toBe(2);
    await resendHeldRepairs(deps); // still down: they stay held
    expect(repairs.heldCount).toBe(2);
    up = true;
    await resendHeldRepairs(deps);
    expect(published.map((j) => j.key).sort()).toEqual(['f1', 'f2']);
    expect(repairs.heldCount).toBe(0);
  });
});

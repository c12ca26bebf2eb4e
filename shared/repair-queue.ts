/**
 * Repair requests with duplicates folded: a blob whose repair is queued and
 * not yet taken by a worker is not queued again.
 *
 * Anti-entropy passes, the periodic sweep, the image jobs and downloads that
 * find a replica missing all ask for the same repairs. After a node lost its
 * disk, every pass queued each of its blobs again, so a backlog of N repairs
 * grew by N per pass and the node healed several times slower than it could.
 *
 * The mark is a Redis key per blob, set with NX before the publish and
 * cleared by the worker when it takes the job (`taken`), so a request made
 * while a repair runs queues a new one. It expires after `markTtlSeconds`: a
 * message lost on the way delays its repair by that much at most. When Redis
 * does not answer, the request is queued anyway; repairs are idempotent, so
 * a duplicate only costs a little work.
 *
 * A request RabbitMQ would not take (unreachable, or not confirming) is held
 * (`hold`) and sent again by `resendHeld` when it is back, rather than left to
 * the repair sweep (every 5 minutes): the chaos drill found files short of a
 * copy that long after their node came back during a broker outage.
 */
import type { Redis } from 'ioredis';
import type { ReplicaRepairJob } from './jobs.js';

export interface RepairQueueDeps {
  redis: Redis;
  /** The cluster's name: prefix of its Redis keys. */
  prefix: string;
  /** Publishes the `replicas.repair` job. */
  publish(job: ReplicaRepairJob): Promise<void>;
  markTtlSeconds?: number;
}

/** Long enough for a backlog of a whole node's blobs to drain; short enough that a lost message is retried. */
export const REPAIR_MARK_TTL_SECONDS = 30 * 60;
/** Requests held while RabbitMQ is away (a few MB at most); past this the repair sweep has them. */
export const HELD_REPAIRS_LIMIT = 50_000;

export class RepairQueue {
  /** Blob key → file id of the requests RabbitMQ did not take. */
  private readonly held = new Map<string, string>();

  constructor(private readonly deps: RepairQueueDeps) {}

  /** Keeps a request RabbitMQ did not take, for `resendHeld`. */
  hold(fileId: string, key: string): void {
    if (this.held.size < HELD_REPAIRS_LIMIT || this.held.has(key)) this.held.set(key, fileId);
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** Sends the held requests again (RabbitMQ is back); those that fail again stay held. */
  async resendHeld(): Promise<number> {
    const entries = [...this.held];
    this.held.clear();
    let sent = 0;
    for (const [key, fileId] of entries) {
      try {
        if (await this.request(fileId, key)) sent++;
      } catch {
        this.hold(fileId, key);
      }
    }
    return sent;
  }

  /** Queues a repair of blob `key` of file `fileId`; false when one is already queued. */
  async request(fileId: string, key: string): Promise<boolean> {
    const ttl = this.deps.markTtlSeconds ?? REPAIR_MARK_TTL_SECONDS;
    const mark = this.markKey(key);
    const fresh = await this.deps.redis.set(mark, '1', 'EX', ttl, 'NX').then(
      (reply) => reply === 'OK',
      () => true, // Redis down: queue it, a duplicate is harmless
    );
    if (!fresh) return false;
    try {
      await this.deps.publish({ fileId, key });
    } catch (err) {
      await this.deps.redis.del(mark).catch(() => undefined); // not queued: let the next request try
      throw err;
    }
    return true;
  }

  /** A worker took the repair of `key`: from now on a request queues a new one. */
  async taken(key: string): Promise<void> {
    await this.deps.redis.del(this.markKey(key)).catch(() => undefined);
  }

  private markKey(key: string): string {
    return `${this.deps.prefix}:repair:queued:${key}`;
  }
}

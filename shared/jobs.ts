/**
 * Background jobs: the queues the cluster declares, the messages they carry,
 * and the delay ladder that holds a job until it is due.
 *
 * RabbitMQ expires per-message TTLs only at the head of a queue, so one queue
 * with mixed TTLs lets a long TTL hold back a short one. Instead every delay
 * queue has a single queue-wide TTL (so its messages expire in the order they
 * arrived): 250 ms, 500 ms, 1 s, … doubling up to ~12 days. A job due in `d`
 * ms goes to the largest step ≤ d; when that step dead-letters it back to its
 * work queue, the consumer sees it is still early and sends it down the
 * ladder again. Each hop at least halves what is left, so a job is never
 * early and arrives at most one smallest step (250 ms) late, in ≤ 23 hops.
 * See docs/jobs.md.
 */
import type { Options } from 'amqplib';
import { z } from 'zod';

export const LADDER_BASE_MS = 250;
export const LADDER_STEPS = 23; // 250 ms · 2^22 ≈ 12.1 days, more than MAX_TTL_SECONDS allows

/** Every step of the ladder, in ms, shortest first. */
export const ladderSteps: readonly number[] = Array.from(
  { length: LADDER_STEPS },
  (_, k) => LADDER_BASE_MS * 2 ** k,
);

/** The ladder step for a job due in `remainingMs`, or null when it is due now. */
export function ladderStep(remainingMs: number): number | null {
  if (remainingMs <= 0) return null;
  let step = ladderSteps[0]!;
  for (const s of ladderSteps) if (s <= remainingMs) step = s;
  return step;
}

/** Names of the exchanges and queues of one cluster (CLUSTER_NAME keeps clusters apart). */
export function topologyNames(prefix: string) {
  return {
    /** Direct exchange: each work queue is bound under its own name. */
    jobs: `${prefix}.jobs`,
    /** Headers exchange: routes a delayed job to the ladder step named in its `delay-step` header. */
    delay: `${prefix}.delay`,
    delayQueue: (stepMs: number) => `${prefix}.delay.${stepMs}`,
    /** Where jobs go after their last failed try, or when they cannot be parsed. */
    deadLetters: `${prefix}.dead-letters`,
    /** Work queues. */
    fileDelete: `${prefix}.files.delete`,
    replicaRepair: `${prefix}.replicas.repair`,
    nodeCheck: `${prefix}.nodes.check`,
    imageProcess: `${prefix}.images.process`,
    imageCompress: `${prefix}.images.compress`,
  };
}

/** Every work queue of a topology. */
export function workQueues(n: TopologyNames): string[] {
  return [n.fileDelete, n.replicaRepair, n.nodeCheck, n.imageProcess, n.imageCompress];
}

export type TopologyNames = ReturnType<typeof topologyNames>;

/** AMQP_QUEUE_TYPE: `classic` queues live on one broker, `quorum` queues are replicated (Raft). */
export type QueueType = 'classic' | 'quorum';

/**
 * A quorum work queue dead-letters a message returned unacknowledged this
 * many times (a worker that died or lost its connection holding it, over and
 * over), so a job that kills its worker cannot loop forever. Failures the
 * worker sees are retried inside one delivery (JOB_ATTEMPTS) and never
 * requeued, so they do not count here.
 */
export const QUORUM_DELIVERY_LIMIT = 20;

/** One queue of the topology and what `assertQueue` declares it with. */
export interface QueueDeclaration {
  name: string;
  options: Options.AssertQueue;
}

/**
 * The dead-letter queue, the work queues, then the delay ladder, each with
 * its arguments. `classic` declares them exactly as before quorum queues
 * existed here: RabbitMQ refuses a re-declaration with other arguments.
 */
export function queueDeclarations(n: TopologyNames, type: QueueType): QueueDeclaration[] {
  const quorum = type === 'quorum';
  const typed = (args: Record<string, unknown> = {}) =>
    quorum ? { arguments: { 'x-queue-type': 'quorum', ...args } } : {};
  return [
    { name: n.deadLetters, options: { durable: true, ...typed() } },
    ...workQueues(n).map((name) => ({
      name,
      options: {
        durable: true,
        deadLetterExchange: '',
        deadLetterRoutingKey: n.deadLetters,
        ...typed({ 'x-delivery-limit': QUORUM_DELIVERY_LIMIT }),
      },
    })),
    // No consumers: messages wait out the queue-wide TTL, then return to the jobs exchange
    // under their original routing key, which is their work queue's name. A quorum step keeps
    // each message until its work queue confirmed it (at-least-once), which RabbitMQ only
    // does with `reject-publish` overflow (with no length limit set, nothing is refused).
    ...ladderSteps.map((step) => ({
      name: n.delayQueue(step),
      options: {
        durable: true,
        messageTtl: step,
        deadLetterExchange: n.jobs,
        ...typed({ 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' }),
      },
    })),
  ];
}

/**
 * `files.delete`: make file `fileId` a tombstone and, after the grace period,
 * remove its blobs. Published at upload with `due` = expiry, and by
 * `DELETE /files/:id` with `due` = now. Safe to run any number of times.
 */
export const fileDeleteJob = z.object({
  fileId: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
  due: z.number().int().nonnegative(),
});
export type FileDeleteJob = z.infer<typeof fileDeleteJob>;

/**
 * `replicas.repair`: give every replica row of blob `key` (of file `fileId`)
 * that is not `ok` a verified copy from a healthy replica. Published when a
 * write placed fewer copies than wanted, when a read finds a replica missing
 * or corrupt, by anti-entropy, and by the periodic repair sweep.
 */
export const replicaRepairJob = z.object({
  fileId: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
  key: z.string().regex(/^[A-Za-z0-9._-]{1,160}$/),
});
export type ReplicaRepairJob = z.infer<typeof replicaRepairJob>;

/**
 * `nodes.check`: anti-entropy for one node: compare its blob listing with the
 * metadata, queue repairs for what it lacks, remove old orphans. Published
 * when a node comes back (online again, or restarted) and by the sweep.
 */
export const nodeCheckJob = z.object({
  node: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
});
export type NodeCheckJob = z.infer<typeof nodeCheckJob>;

/**
 * `images.process`: make the thumbnail of image `fileId`, record it, then
 * publish `images.compress` for its compressed copy (the same message shape):
 * thumbnails never wait behind other images' copies. Published by the gateway
 * once an upload of an image is committed, and by the worker's sweep for
 * images still pending. Safe to run any number of times: a variant already
 * recorded is not made again, and a re-run rewrites the same bytes under the
 * same keys.
 */
export const imageProcessJob = z.object({
  fileId: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
});
export type ImageProcessJob = z.infer<typeof imageProcessJob>;

/** The Redis hash of repair counters (`done`, `bytes`) the workers keep and GET /api/cluster reports. */
export const repairStatsKey = (clusterName: string) => `${clusterName}:stats:repairs`;

/**
 * Runs jobs from RabbitMQ work queues with at-least-once semantics:
 * manual acks after the handler finished, bounded prefetch, retries with
 * backoff (p-retry) inside the worker, then the dead-letter queue. A message
 * that does not parse goes straight to the dead-letter queue; nothing a
 * message contains can crash the process.
 *
 * A job whose last try failed for a reason that may pass by itself (the
 * database or every node unavailable, a disk full: `isTransient`) is not
 * dead-lettered: it is published again through the delay ladder, due in
 * 5 s, then 10 s, 20 s, … up to 5 min, MAX_DEFERRALS times (about 40 min)
 * before it is given up. A few seconds of a dependency's outage must not
 * leave a replica missing until the next repair sweep.
 *
 * Stopping cancels the consumers (no new deliveries), lets the jobs in hand
 * finish for a while, and leaves the rest unacknowledged: closing the
 * connection hands them back to RabbitMQ, which redelivers them.
 *
 * Each job runs under the request id its message carries (the upload that
 * queued it), or a new one, so every line it logs, and every node request it
 * makes, can be traced back.
 */
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import pRetry from 'p-retry';
import type { z } from 'zod';
import type { AmqpClient } from '../shared/amqp.js';
import { isTransient } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { JobMetrics } from './metrics.js';
import { REQUEST_ID_HEADER, requestIdFrom, runWithRequestId } from '../shared/request-context.js';

/** Times a job failing for a transient reason is put off before it is dead-lettered. */
export const MAX_DEFERRALS = 12;
/** How many times the job in a message was put off already. */
export const DEFERRALS_HEADER = 'x-trove-deferrals';

/** The wait before a job put off `deferrals` times already is tried again: 5 s doubling, at most 5 min. */
export function deferralDelayMs(deferrals: number): number {
  return Math.min(5000 * 2 ** deferrals, 300_000);
}

export interface JobHandler<S extends z.ZodType = z.ZodType> {
  queue: string;
  schema: S;
  handle(job: z.output<S>): Promise<void>;
}

/** Types `handle` from `schema` (the consumer itself holds handlers of any schema). */
export function jobHandler<S extends z.ZodType>(handler: JobHandler<S>): JobHandler {
  return handler as unknown as JobHandler;
}

export interface ConsumerOptions {
  prefetch: number;
  /** Tries per delivery, the first included. */
  attempts: number;
  /** First backoff between tries, in ms (doubling). */
  retryDelayMs?: number;
  log: Logger;
  /** Counts outcomes, retries and durations (GET /metrics). */
  metrics?: JobMetrics;
}

export class JobConsumer {
  private readonly inFlight = new Set<Promise<void>>();
  private consumers: { channel: ConfirmChannel; tag: string }[] = [];
  private stopping = false;

  constructor(
    private readonly amqp: AmqpClient,
    private readonly handlers: JobHandler[],
    private readonly opts: ConsumerOptions,
  ) {}

  /** Subscribes now and after every reconnect. */
  async start(): Promise<void> {
    await this.amqp.onChannel((channel) => this.subscribe(channel));
  }

  private async subscribe(channel: ConfirmChannel): Promise<void> {
    if (this.stopping) return;
    this.consumers = [];
    await channel.prefetch(this.opts.prefetch);
    for (const handler of this.handlers) {
      const { consumerTag } = await channel.consume(
        handler.queue,
        (msg) => {
          if (msg) {
            const requestId = requestIdFrom(msg.properties.headers?.[REQUEST_ID_HEADER]);
            this.track(runWithRequestId(requestId, () => this.run(channel, handler, msg)));
          }
        },
        { noAck: false },
      );
      this.consumers.push({ channel, tag: consumerTag });
    }
    this.opts.log.info({ queues: this.handlers.map((h) => h.queue) }, 'consuming jobs');
  }

  private track(job: Promise<void>): void {
    this.inFlight.add(job);
    void job.finally(() => this.inFlight.delete(job));
  }

  private async run(channel: ConfirmChannel, handler: JobHandler, msg: ConsumeMessage) {
    const log = this.opts.log.child({ queue: handler.queue, redelivered: msg.fields.redelivered });
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    const metrics = this.opts.metrics;
    const job = parseJob(handler, msg.content);
    if (!job.success) {
      log.error(
        { problem: job.error, body: msg.content.toString('utf8', 0, 200) },
        'malformed job, dead-lettered',
      );
      metrics?.jobFailed(handler.queue, seconds());
      return settle(channel, msg, 'dead-letter', log);
    }
    try {
      await pRetry(() => handler.handle(job.data), {
        retries: this.opts.attempts - 1,
        minTimeout: this.opts.retryDelayMs ?? 250,
        factor: 2,
        shouldRetry: () => !this.stopping,
        onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
          log.warn(
            { job: job.data, err: error.message, attempt: attemptNumber, retriesLeft },
            'job failed',
          );
          if (retriesLeft > 0 && !this.stopping) metrics?.jobRetried(handler.queue);
        },
      });
    } catch (err) {
      if (this.stopping) return; // left unacknowledged: RabbitMQ redelivers it after we close
      const deferrals = Number(msg.properties.headers?.[DEFERRALS_HEADER] ?? 0) || 0;
      if (isTransient(err) && deferrals < MAX_DEFERRALS) {
        if (await this.defer(handler.queue, job.data, deferrals, log, err as Error)) {
          metrics?.jobDeferred(handler.queue, seconds());
          return settle(channel, msg, 'ack', log);
        }
      }
      log.error(
        { job: job.data, err: (err as Error).message },
        'job failed for good, dead-lettered',
      );
      metrics?.jobFailed(handler.queue, seconds());
      return settle(channel, msg, 'dead-letter', log);
    }
    metrics?.jobDone(handler.queue, seconds());
    settle(channel, msg, 'ack', log);
  }

  /** Publishes the job again, due later; false when RabbitMQ would not take it. */
  private async defer(
    queue: string,
    job: unknown,
    deferrals: number,
    log: Logger,
    err: Error,
  ): Promise<boolean> {
    const delayMs = deferralDelayMs(deferrals);
    try {
      await this.amqp.publish(queue, job as object, {
        due: Date.now() + delayMs,
        headers: { [DEFERRALS_HEADER]: String(deferrals + 1) },
      });
    } catch (publishErr) {
      log.warn({ job, err: (publishErr as Error).message }, 'could not put the job off');
      return false;
    }
    log.warn(
      { job, err: err.message, deferrals: deferrals + 1, retry_in_ms: delayMs },
      'job failed for now, tried again later',
    );
    return true;
  }

  /** Stops taking jobs and waits up to `graceMs` for the ones in hand. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.consumers.map(({ channel, tag }) => channel.cancel(tag).catch(() => undefined)),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise((resolve) => (timer = setTimeout(resolve, graceMs))),
    ]);
    clearTimeout(timer);
    if (this.inFlight.size > 0)
      this.opts.log.warn(
        { jobs: this.inFlight.size },
        'jobs unfinished at shutdown; RabbitMQ will redeliver them',
      );
  }
}

function parseJob(
  handler: JobHandler,
  content: Buffer,
): { success: true; data: unknown } | { success: false; error: string } {
  let value: unknown;
  try {
    value = JSON.parse(content.toString('utf8'));
  } catch {
    return { success: false, error: 'not JSON' };
  }
  const parsed = handler.schema.safeParse(value);
  return parsed.success
    ? { success: true, data: parsed.data }
    : {
        success: false,
        error: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
      };
}

/** Acks or dead-letters; on a channel that closed meanwhile this is a no-op (the broker redelivers). */
function settle(
  channel: ConfirmChannel,
  msg: ConsumeMessage,
  how: 'ack' | 'dead-letter',
  log: Logger,
) {
  try {
    if (how === 'ack') channel.ack(msg);
    else channel.nack(msg, false, false);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not settle the job; it will be redelivered');
  }
}

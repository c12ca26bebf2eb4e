/**
 * One RabbitMQ connection per process, kept alive: it connects with backoff
 * (p-retry), declares the topology, and reconnects whenever RabbitMQ closes
 * it (restart, `rabbitmqctl close_connection`, network). Publishing uses a
 * confirm channel, so a publish resolves only once the broker has taken
 * responsibility for the (persistent) message.
 *
 * Consumers register with `onChannel`; they are called again with the new
 * channel after every reconnect, so a restarted broker loses no consumer.
 */
import amqp, { type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import pRetry from 'p-retry';
import { withoutCredentials } from './config.js';
import {
  ladderStep,
  ladderSteps,
  queueDeclarations,
  topologyNames,
  workQueues,
  type QueueType,
  type TopologyNames,
} from './jobs.js';
import type { Logger } from './logger.js';
import { UnavailableError } from './errors.js';
import { REQUEST_ID_HEADER, currentRequestId } from './request-context.js';

export interface AmqpOptions {
  /** Nodes of one RabbitMQ cluster (AMQP_URLS); each connect attempt takes the next, round robin. */
  urls: readonly string[];
  prefix: string;
  /** AMQP_QUEUE_TYPE: how every queue of the topology is declared. */
  queueType: QueueType;
  /** Shown as `<prefix>:<name>` in the RabbitMQ management UI and `rabbitmqctl list_connections`. */
  connectionName: string;
  log: Logger;
}

type ChannelListener = (channel: ConfirmChannel) => void | Promise<void>;

/**
 * RabbitMQ refused to declare a queue because it already exists with other
 * arguments (PRECONDITION_FAILED): typically queues made under the other
 * AMQP_QUEUE_TYPE. Retrying alone never fixes it; an operator has to.
 */
export class QueueMismatchError extends Error {
  constructor(queue: string, cause: Error) {
    super(
      `RabbitMQ refused to declare queue "${queue}": it exists with other arguments ` +
        `(${cause.message}). A queue's type and arguments cannot change in place: to switch ` +
        'AMQP_QUEUE_TYPE, use new queue names (another CLUSTER_NAME) or delete the old queues ' +
        'once they are drained (docs/jobs.md, "Quorum queues")',
      { cause },
    );
    this.name = 'QueueMismatchError';
  }
}

/**
 * The job queue as a publisher (the gateway) uses it: publish jobs, read
 * queue depths. AmqpClient is one; a test may pass a fake.
 */
export interface JobPublisher {
  readonly names: TopologyNames;
  /** False while RabbitMQ is unreachable: publishers then leave the work to the sweeps. */
  readonly connected: boolean;
  publish(queue: string, body: object, opts?: { due?: number; timeoutMs?: number }): Promise<void>;
  /** Messages waiting in `queue`, or null when RabbitMQ is not reachable. */
  depth(queue: string): Promise<number | null>;
}

export class AmqpClient implements JobPublisher {
  readonly names: TopologyNames;
  private conn: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private connecting: Promise<void> | undefined;
  private stopped = false;
  private readonly listeners: ChannelListener[] = [];
  private waiters: (() => void)[] = [];
  /** Index in `opts.urls` of the next connect attempt. */
  private nextUrl = 0;

  constructor(private readonly opts: AmqpOptions) {
    if (opts.urls.length === 0) throw new Error('AmqpClient needs at least one URL');
    this.names = topologyNames(opts.prefix);
  }

  /** Connects (retrying forever, with backoff); resolves when connected, or when closed first. */
  start(): Promise<void> {
    this.connecting ??= this.connectWithRetry()
      .catch((err) => {
        if (!this.stopped) throw err;
      })
      .finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  get connected(): boolean {
    return this.channel !== undefined;
  }

  /** `fn` runs with the channel now (if connected) and after every reconnect. */
  async onChannel(fn: ChannelListener): Promise<void> {
    this.listeners.push(fn);
    if (this.channel) await fn(this.channel);
  }

  private async connectWithRetry(): Promise<void> {
    let mismatches = 0;
    await pRetry(() => this.connectOnce(), {
      retries: Infinity,
      minTimeout: 200,
      maxTimeout: 5000,
      shouldRetry: () => !this.stopped,
      onFailedAttempt: ({ error, attemptNumber }) => {
        if (error instanceof QueueMismatchError) {
          // Not a passing fault: say what to do, once and then now and again.
          if (mismatches++ % 10 === 0)
            this.opts.log.error({ err: error.message, attempt: attemptNumber }, error.message);
        } else if (attemptNumber === 1 || attemptNumber % 10 === 0)
          this.opts.log.warn(
            { err: error.message, attempt: attemptNumber },
            'RabbitMQ not reachable, retrying',
          );
      },
    });
  }

  private async connectOnce(): Promise<void> {
    if (this.stopped) return;
    // Round robin, and on from the node last used: after a node is lost, the next is tried first.
    const url = this.opts.urls[this.nextUrl++ % this.opts.urls.length]!;
    const shown = withoutCredentials(url);
    const conn = await amqp
      .connect(withHeartbeat(url), {
        clientProperties: { connection_name: `${this.opts.prefix}:${this.opts.connectionName}` },
      })
      .catch((err: Error) => {
        throw new Error(`${shown}: ${err.message}`, { cause: err });
      });
    // From the first moment: the broker may close a connection while we set it up (as it
    // does to a process resumed after missing its heartbeats), and an 'error' event with
    // no listener would end the process. The failed setup below then retries.
    conn.on('error', (err: Error) => this.opts.log.warn({ err: err.message }, 'RabbitMQ error'));
    try {
      const channel = await conn.createConfirmChannel();
      await this.assertTopology(channel);
      conn.once('close', () => this.lost());
      channel.on('error', (err: Error) =>
        this.opts.log.warn({ err: err.message }, 'RabbitMQ channel error'),
      );
      channel.once('close', () => {
        // A channel closed by the broker (not by us) with the connection still up: start over.
        if (this.channel === channel) void conn.close().catch(() => undefined);
      });
      this.conn = conn;
      this.channel = channel;
      for (const fn of this.listeners) await fn(channel);
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw err;
    }
    this.opts.log.info(
      { connection: this.opts.connectionName, url: shown, queueType: this.opts.queueType },
      'RabbitMQ connected',
    );
    for (const wake of this.waiters.splice(0)) wake();
  }

  private lost(): void {
    this.channel = undefined;
    this.conn = undefined;
    if (this.stopped) return;
    this.opts.log.warn('RabbitMQ connection lost, reconnecting');
    void this.start();
  }

  /** Declares every exchange and queue (idempotent; same arguments every time). */
  private async assertTopology(ch: ConfirmChannel): Promise<void> {
    const n = this.names;
    await ch.assertExchange(n.jobs, 'direct', { durable: true });
    await ch.assertExchange(n.delay, 'headers', { durable: true });
    for (const { name, options } of queueDeclarations(n, this.opts.queueType)) {
      try {
        await ch.assertQueue(name, options);
      } catch (err) {
        // 406 PRECONDITION_FAILED: the queue exists with other arguments.
        if ((err as { code?: unknown }).code === 406)
          throw new QueueMismatchError(name, err as Error);
        throw err;
      }
    }
    for (const queue of workQueues(n)) await ch.bindQueue(queue, n.jobs, queue);
    for (const step of ladderSteps)
      await ch.bindQueue(n.delayQueue(step), n.delay, '', {
        'x-match': 'all',
        'delay-step': String(step),
      });
  }

  /** The channel, waiting up to `timeoutMs` for a reconnect in progress. */
  private async ready(timeoutMs: number): Promise<ConfirmChannel> {
    if (this.channel) return this.channel;
    if (this.stopped) throw new UnavailableError('the job queue is closed', 'QUEUE_UNAVAILABLE');
    void this.start();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        reject(new UnavailableError('RabbitMQ is not reachable', 'QUEUE_UNAVAILABLE'));
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(wake);
    });
    return this.channel!;
  }

  /**
   * Publishes a persistent job to work queue `queue`, through the delay
   * ladder when `due` is in the future; resolves once the broker confirmed it.
   * The current request id travels in the `x-request-id` header (dead-lettering
   * through the ladder keeps headers), so the worker logs the job under it.
   */
  async publish(
    queue: string,
    body: object,
    opts: { due?: number; timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<void> {
    const channel = await this.ready(opts.timeoutMs ?? 5000);
    const step = ladderStep((opts.due ?? 0) - Date.now());
    const content = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { ...opts.headers };
    if (step !== null) headers['delay-step'] = String(step);
    const requestId = currentRequestId();
    if (requestId !== undefined) headers[REQUEST_ID_HEADER] = requestId;
    const props: Options.Publish = {
      persistent: true,
      contentType: 'application/json',
      timestamp: Math.floor(Date.now() / 1000),
      headers,
    };
    const exchange = step === null ? this.names.jobs : this.names.delay;
    const timeoutMs = opts.timeoutMs ?? 5000;
    await new Promise<void>((resolve, reject) => {
      // A connection that died silently never confirms; give up rather than hang the caller.
      // (If the broker did take it, the job runs twice, which every handler allows.)
      const timer = setTimeout(
        () => reject(new UnavailableError('RabbitMQ did not confirm the job', 'QUEUE_UNAVAILABLE')),
        timeoutMs,
      );
      channel.publish(exchange, queue, content, props, (err) => {
        clearTimeout(timer);
        if (err) reject(new UnavailableError('RabbitMQ refused the job', 'QUEUE_UNAVAILABLE'));
        else resolve();
      });
    });
  }

  /** Messages waiting in `queue`, or null when RabbitMQ is not reachable. */
  async depth(queue: string): Promise<number | null> {
    if (!this.channel) return null;
    try {
      return (await this.channel.checkQueue(queue)).messageCount;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    const conn = this.conn;
    this.channel = undefined;
    this.conn = undefined;
    await conn?.close().catch(() => undefined);
  }
}

/** Heartbeats every 10 s unless the URL says otherwise, so a dead peer is noticed in seconds. */
function withHeartbeat(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', '10');
  return u.toString();
}

/** Removes every queue and exchange of `prefix` (tests clean up after themselves). */
export async function deleteTopology(url: string, prefix: string): Promise<void> {
  const n = topologyNames(prefix);
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    for (const q of [...workQueues(n), n.deadLetters, ...ladderSteps.map(n.delayQueue)])
      await ch.deleteQueue(q);
    for (const x of [n.jobs, n.delay]) await ch.deleteExchange(x);
    await ch.close();
  } finally {
    await conn.close();
  }
}

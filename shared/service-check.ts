/**
 * Do Redis and RabbitMQ answer? A protocol-level hello, not just a TCP
 * connect, so a wrong service on the port is not mistaken for the right one.
 */
import { connect } from 'node:net';
import type { RedisConnection } from './config.js';

export interface ServiceStatus {
  name: string;
  url: string;
  ok: boolean;
  detail: string;
}

function hello(
  host: string,
  port: number,
  greeting: Buffer,
  accept: (reply: Buffer) => boolean,
  timeoutMs: number,
) {
  return new Promise<string>((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => socket.write(greeting));
    socket.once('data', (reply) => {
      clearTimeout(timer);
      socket.destroy();
      if (accept(reply)) resolve('answers');
      else
        reject(
          new Error(`unexpected reply ${JSON.stringify(reply.subarray(0, 16).toString('latin1'))}`),
        );
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function checkRedis(url: string, timeoutMs = 2000): Promise<ServiceStatus> {
  const u = new URL(url);
  try {
    // +PONG, or -NOAUTH when a password is set: either way it is a Redis.
    const detail = await hello(
      u.hostname,
      Number(u.port || 6379),
      Buffer.from('PING\r\n'),
      (r) => /^[+-]/.test(r.toString()),
      timeoutMs,
    );
    return { name: 'Redis', url, ok: true, detail };
  } catch (err) {
    return { name: 'Redis', url, ok: false, detail: (err as Error).message };
  }
}

/**
 * Redis as the processes will reach it: REDIS_URL, or with REDIS_SENTINELS
 * the sentinels (they answer PING too), of which one answering is enough.
 */
export async function checkRedisConnection(
  conn: RedisConnection,
  timeoutMs = 2000,
): Promise<ServiceStatus> {
  if (!conn.sentinels) return checkRedis(conn.url, timeoutMs);
  const addresses = conn.sentinels.map((s) =>
    s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`,
  );
  const results = await Promise.all(addresses.map((a) => checkRedis(`redis://${a}`, timeoutMs)));
  const url = `sentinels ${addresses.join(',')}`;
  const ok = results.some((r) => r.ok);
  const detail = ok
    ? 'a sentinel answers'
    : results.map((r, i) => `${addresses[i]}: ${r.detail}`).join('; ');
  return { name: 'Redis', url, ok, detail };
}

export async function checkRabbitMq(url: string, timeoutMs = 2000): Promise<ServiceStatus> {
  const u = new URL(url);
  const header = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]); // "AMQP" 0-9-1
  try {
    // The broker answers the protocol header with a connection.start method frame (type 1).
    const detail = await hello(
      u.hostname,
      Number(u.port || 5672),
      header,
      (r) => r[0] === 1,
      timeoutMs,
    );
    return { name: 'RabbitMQ', url: `${u.protocol}//${u.host}`, ok: true, detail };
  } catch (err) {
    return {
      name: 'RabbitMQ',
      url: `${u.protocol}//${u.host}`,
      ok: false,
      detail: (err as Error).message,
    };
  }
}

export const HOW_TO_START = {
  Redis: [
    'Debian/Ubuntu:  sudo apt-get install -y redis-server && sudo systemctl start redis-server',
    '  (no systemd: redis-server --daemonize yes --bind 127.0.0.1 --save "" --appendonly no)',
    'Docker:         docker compose up -d redis',
  ],
  RabbitMQ: [
    'Debian/Ubuntu:  sudo apt-get install -y rabbitmq-server && sudo systemctl start rabbitmq-server',
    '  (no systemd: rabbitmq-server -detached)',
    'Docker:         docker compose up -d rabbitmq',
  ],
} as const;

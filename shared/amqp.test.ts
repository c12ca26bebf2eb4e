/**
 * AmqpClient's connection handling against a stand-in for amqplib's connect:
 * what a broker can do to a connection while it is being set up.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from './logger.js';

const connect = vi.hoisted(() => vi.fn());
vi.mock('amqplib', () => ({ default: { connect } }));

const { AmqpClient } = await import('./amqp.js');

/**
 * A connection the broker closes while its channel is being opened: the
 * 'error' comes from the socket, outside any promise of ours, then the
 * channel's opening fails.
 */
function connectionClosedDuringSetup() {
  const conn = new EventEmitter() as EventEmitter & Record<string, unknown>;
  conn.createConfirmChannel = () =>
    new Promise((_, reject) =>
      setImmediate(() => {
        const err = new Error('Unexpected close');
        conn.emit('error', err);
        reject(err);
      }),
    );
  conn.close = async () => undefined;
  return conn;
}

afterEach(() => {
  connect.mockReset();
});

describe('AmqpClient', () => {
  it('survives a connection the broker closes while it is being set up, and connects again', async () => {
    const channel = Object.assign(new EventEmitter(), {
      assertExchange: async () => undefined,
      assertQueue: async () => undefined,
      bindQueue: async () => undefined,
    });
    const healthy = Object.assign(new EventEmitter(), {
      createConfirmChannel: async () => channel,
      close: async () => undefined,
    });
    connect.mockResolvedValueOnce(connectionClosedDuringSetup()).mockResolvedValueOnce(healthy);
    const client = new AmqpClient({
      urls: ['amqp://127.0.0.1:1'],
      prefix: 'amqp-test',
      queueType: 'classic',
      connectionName: 'test',
      log: createLogger('amqp-test', 'silent'),
    });
    // Without a listener from the start, the first connection's 'error' is uncaught.
    await client.start();
    expect(client.connected).toBe(true);
    expect(connect).toHaveBeenCalledTimes(2);
  });
});

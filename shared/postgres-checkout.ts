/**
 * A client checked out of a node-postgres pool for several statements (a
 * transaction, a session lock), safe against its connection dying.
 *
 * While a client is checked out the pool has no 'error' listener on it, and
 * a connection error read while none of its statements runs (a FATAL from
 * `pg_terminate_backend` or a shutdown, parsed in the same chunk as the last
 * result; a reset socket) is emitted as 'error': with no listener, that
 * crashes the process. So the listener is attached in the pool's callback,
 * the moment the client is handed over (not after an `await`, by which time
 * the rest of the chunk has been parsed), and kept until the release; the
 * next statement then fails ("not queryable"), and the client is dropped.
 */
import type { Pool, PoolClient } from 'pg';

export interface Checkout {
  client: PoolClient;
  /** The connection failed while checked out: the client must not go back to the pool. */
  readonly lost: boolean;
  /** Hands the client back, or drops it (`broken`, or lost): the pool opens a new one. */
  release(broken?: boolean): void;
}

export function checkout(pool: Pool, onLost?: (err: Error) => void): Promise<Checkout> {
  return new Promise((resolve, reject) => {
    pool.connect((err, client) => {
      if (err || !client) {
        reject(err ?? new Error('the pool handed over no client'));
        return;
      }
      let lost = false;
      const listener = (e: Error) => {
        lost = true;
        onLost?.(e);
      };
      client.on('error', listener);
      resolve({
        client,
        get lost() {
          return lost;
        },
        release(broken = false) {
          client.off('error', listener);
          client.release(broken || lost);
        },
      });
    });
  });
}

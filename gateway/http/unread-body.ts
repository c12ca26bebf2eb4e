/**
 * The rest of a refused request's body, read and dropped before the answer.
 *
 * A request refused before its body was read (over the size limit, a bad
 * signature) is answered while the client may still be sending. Node then
 * closes the connection once the answer is out, and a client that writes
 * its whole body before reading (Node's http, so the AWS SDK) gets EPIPE or
 * a reset instead of the answer. Reading the rest first, up to a bound, lets
 * it finish and read the refusal, as a web server's "lingering close" does.
 * Past the bound the answer goes anyway and the connection closes.
 */
import type { IncomingMessage } from 'node:http';

export interface DrainBound {
  /** Bytes read at most before answering anyway. */
  maxBytes: number;
  /** Time waited at most, in ms. */
  maxMs: number;
}

/** Enough for the bodies a refused upload usually still has in flight, not a large file's. */
export const DEFAULT_DRAIN: DrainBound = { maxBytes: 64 * 1024 * 1024, maxMs: 10_000 };

/** Reads and drops what is left of `incoming` (detached from its consumers); resolves when it ended or a bound was reached. */
export function drainUnread(incoming: IncomingMessage, bound = DEFAULT_DRAIN): Promise<void> {
  if (incoming.complete || incoming.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let bytes = 0;
    const done = () => {
      clearTimeout(timer);
      incoming.off('data', count);
      incoming.off('end', done);
      incoming.off('close', done);
      incoming.off('error', done);
      resolve();
    };
    const count = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > bound.maxBytes) done();
    };
    const timer = setTimeout(done, bound.maxMs);
    // Given up on past the bound, the request may still fail (the client resets): never unheard.
    incoming.on('error', () => {});
    incoming.unpipe();
    incoming.on('data', count);
    incoming.once('end', done);
    incoming.once('close', done);
    incoming.once('error', done);
    incoming.resume();
  });
}

/**
 * The body of a /process or /batch request as their handlers read it:
 * through the minimum rate of shared/min-rate.ts (BODY_TIMEOUT_SECONDS plus
 * 1 s per BODY_MIN_RATE bytes received), so a client that trickles its body
 * is cut off with a 408 instead of keeping a connection, a temp file and its
 * share of the spool for as long as it likes.
 */
import type { Readable } from 'node:stream';
import { BodyTooSlowError } from '../../shared/errors.js';
import { MinRate, type MinRateRule, type TooSlow } from '../../shared/min-rate.js';

export interface PacedBody {
  /** The request's bytes; fails with 408 BODY_TOO_SLOW when they come too slowly. */
  stream: Readable;
  /** Stops the clock and lets go of the request (the server drains or drops what is left of it). */
  release(): void;
}

export function pacedBody(incoming: Readable, rule: MinRateRule): PacedBody {
  const stream = new MinRate(rule, (state) => new BodyTooSlowError(tooSlowMessage(rule, state)));
  // The cut-off may come while no stage listens (between receiving and answering, after a
  // refusal): an 'error' with no listener would bring the gateway down.
  stream.on('error', () => undefined);
  incoming.pipe(stream);
  return {
    stream,
    release() {
      incoming.unpipe(stream);
      stream.destroy();
    },
  };
}

function tooSlowMessage(rule: MinRateRule, { received, waitedMs }: TooSlow): string {
  const seconds = (waitedMs / 1000).toFixed(1);
  return (
    `the request body arrived too slowly (${received} bytes in ${seconds} s): a body gets ` +
    `BODY_TIMEOUT_SECONDS (${rule.graceMs / 1000} s) plus 1 s per BODY_MIN_RATE ` +
    `(${rule.bytesPerSecond} bytes) received`
  );
}

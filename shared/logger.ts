/**
 * Logs, one event a line (pino). `service` tells the processes apart in a
 * merged stream; `request_id` (from shared/request-context.ts) ties together
 * the lines of one request or job across the gateway, the nodes and the
 * worker. JSON lines by default; human-readable lines on a terminal.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { currentRequestId } from './request-context.js';

export type { Logger };

/** LOG_FORMAT: `auto` is pretty on a terminal, JSON lines otherwise (files, pipes, CI). */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  format?: LogFormat;
  /** Where lines go instead of stdout (tests). */
  stream?: DestinationStream;
}

export function resolveLogFormat(format: LogFormat, isTty: boolean): 'json' | 'pretty' {
  if (format === 'auto') return isTty ? 'pretty' : 'json';
  return format;
}

export function createLogger(service: string, level: string, opts: LoggerOptions = {}): Logger {
  const format = resolveLogFormat(opts.format ?? 'auto', process.stdout.isTTY === true);
  const options = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: requestIdMixin,
  };
  if (format === 'pretty') {
    // A plain stream in this thread, not a `transport` (a worker thread that must resolve
    // pino-pretty on its own); sync, so the last lines before an exit are not lost.
    const stream = pretty({
      destination: opts.stream ?? 1,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      // One line per event, as in JSON: `npm start` interleaves (and prefixes) several processes.
      singleLine: true,
    });
    return pino(options, stream);
  }
  return opts.stream ? pino(options, opts.stream) : pino(options);
}

function requestIdMixin(): { request_id?: string } {
  const id = currentRequestId();
  return id === undefined ? {} : { request_id: id };
}

import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, resolveLogFormat, type LogFormat } from './logger.js';
import { runWithRequestId } from './request-context.js';

/** A logger writing into memory; `lines()` is what it wrote so far. */
function capture(format: LogFormat = 'json') {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log = createLogger('test-service', 'info', { format, stream });
  const lines = () => chunks.join('').split('\n').filter(Boolean);
  return { log, lines };
}

describe('logger', () => {
  it('writes one JSON line per event, with the service and no request_id outside a request', () => {
    const { log, lines } = capture();
    log.info({ key: 'ab/cd' }, 'first');
    log.warn('second');
    const parsed = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed).toHaveLength(2);
    expect(parsed[0]).toMatchObject({ service: 'test-service', key: 'ab/cd', msg: 'first' });
    expect(parsed[1]).toMatchObject({ level: 40, msg: 'second' });
    expect(parsed.every((p) => !('request_id' in p))).toBe(true);
  });

  it('adds the current request_id to every line, child loggers included', async () => {
    const { log, lines } = capture();
    const child = log.child({ queue: 'q' });
    await runWithRequestId('req-1', async () => {
      log.info('in request');
      await new Promise((r) => setTimeout(r, 1));
      child.info('child, after an await');
    });
    runWithRequestId('req-2', () => log.info('another'));
    log.info('outside');
    const parsed = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.map((p) => [p.msg, p.request_id])).toEqual([
      ['in request', 'req-1'],
      ['child, after an await', 'req-1'],
      ['another', 'req-2'],
      ['outside', undefined],
    ]);
    expect(parsed[1]).toMatchObject({ queue: 'q' });
  });

  it('writes human-readable lines in pretty format, request id included', () => {
    const { log, lines } = capture('pretty');
    runWithRequestId('req-pretty', () => log.info({ key: 'k1' }, 'hello there'));
    expect(lines()).toHaveLength(1);
    const out = lines()[0]!;
    expect(() => JSON.parse(out)).toThrow();
    expect(out).toContain('hello there');
    expect(out).toContain('req-pretty');
    expect(out).toContain('INFO');
  });

  it('is pretty on a terminal and JSON elsewhere unless told', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });
});

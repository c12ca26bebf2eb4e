/**
 * A slow CompleteMultipartUpload's answer through a real HTTP server: within
 * the time, a plain response (or the error's status); past it, a 200 at
 * once, the XML declaration, spaces while the work runs, then the document
 * or S3's <Error>.
 */
import type { HttpBindings } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../shared/errors.js';
import { close, listen } from '../../shared/http.js';
import { createLogger } from '../../shared/logger.js';
import { answerKeptAlive, type XmlAnswer } from './kept-alive-answer.js';
import { s3ErrorHandler } from './s3-error-response.js';
import { XML_DECLARATION } from './xml-writer.js';

const log = createLogger('s3-test', 'silent');
const DOCUMENT = `${XML_DECLARATION}<CompleteMultipartUploadResult><ETag>"e-2"</ETag></CompleteMultipartUploadResult>`;
const ANSWER: XmlAnswer = {
  xml: DOCUMENT,
  headers: { 'content-type': 'application/xml', etag: '"e-2"' },
};

let server: ServerType | undefined;
afterEach(async () => {
  if (server) await close(server);
  server = undefined;
});

/** A server whose one route answers `work()` kept alive after `afterMs`. */
async function serve(work: () => Promise<XmlAnswer>, afterMs: number): Promise<string> {
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.onError(s3ErrorHandler(log));
  app.post('/b/k', (c) =>
    answerKeptAlive(c, work(), { afterMs, earlyHeaders: { 'x-trove-file-id': 'f1' }, log }),
  );
  server = await listen(app, '127.0.0.1', 0);
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/b/k`;
}

const after = <T>(ms: number, value: () => T) =>
  new Promise<T>((resolve, reject) =>
    setTimeout(() => {
      try {
        resolve(value());
      } catch (err) {
        reject(err as Error);
      }
    }, ms),
  );

describe('answerKeptAlive', () => {
  it('answers plainly when the work ends in time, with its headers', async () => {
    const res = await fetch(await serve(async () => ANSWER, 1000), { method: 'POST' });
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('"e-2"');
    expect(await res.text()).toBe(DOCUMENT);
  });

  it("answers a failure in time with the error's own status", async () => {
    const url = await serve(async () => {
      throw new UnavailableError('too few nodes');
    }, 1000);
    const res = await fetch(url, { method: 'POST' });
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('<Code>ServiceUnavailable</Code>');
  });

  it('sends the 200 at once past the time, spaces while it runs, then the document', async () => {
    const url = await serve(() => after(250, () => ANSWER), 20);
    const started = Date.now();
    const res = await fetch(url, { method: 'POST' });
    // The headers came before the work ended.
    expect(Date.now() - started).toBeLessThan(200);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/xml');
    expect(res.headers.get('x-trove-file-id')).toBe('f1');
    const body = await res.text();
    expect(body.startsWith(XML_DECLARATION)).toBe(true);
    const rest = body.slice(XML_DECLARATION.length);
    expect(rest).toMatch(/^ {2,}<CompleteMultipartUploadResult>/);
    expect(rest.trimStart()).toBe(DOCUMENT.slice(XML_DECLARATION.length));
  });

  it("ends a kept-alive 200 with S3's <Error> when the work fails", async () => {
    const url = await serve(
      () =>
        after(150, () => {
          throw new UnavailableError('only 1 of 3 storage nodes could put the upload together');
        }),
      20,
    );
    const res = await fetch(url, { method: 'POST' });
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body.startsWith(XML_DECLARATION)).toBe(true);
    expect(body).toMatch(/\?>\n +<Error><Code>ServiceUnavailable<\/Code><Message>only 1 of 3/);
  });

  it('carries on quietly when the client leaves during a kept-alive 200', async () => {
    let ended!: () => void;
    const finished = new Promise<void>((resolve) => (ended = resolve));
    const url = await serve(
      () =>
        after(200, () => {
          ended();
          return ANSWER;
        }),
      10,
    );
    const abort = new AbortController();
    const res = await fetch(url, { method: 'POST', signal: abort.signal });
    expect(res.status).toBe(200);
    abort.abort(); // gone while the spaces are being sent
    await finished;
    // The work ended and its answer went nowhere, with no error out of the server.
    await new Promise((r) => setTimeout(r, 50));
    // An aborted fetch leaves the server a connection that close() waits out: not this test's.
    await close(server!, 100);
    server = undefined;
  });
});

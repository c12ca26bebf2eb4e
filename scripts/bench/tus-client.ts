/**
 * One tus upload of a file on disk, sent by tus-js-client as a Node client
 * sends it: a POST, then one PATCH per chunk. The file goes in as an
 * fs.ReadStream, which tus-js-client's Node build slices by path (a fresh
 * read stream per chunk), so the bench never holds a chunk, let alone the
 * file. Every request is timed through a wrapped HTTP stack: when it
 * started, when its last body byte went to the socket, when it was answered.
 */
import { createReadStream } from 'node:fs';
import type { Agent, ClientRequest } from 'node:http';
import * as tus from 'tus-js-client';

/** One request of an upload, in ms from the upload's start. */
export interface TusRequestTiming {
  method: string;
  status: number;
  startMs: number;
  /** The last body byte handed to the kernel (the request's end, for one without a body). */
  sentMs: number;
  answeredMs: number;
}

export interface TusTransfer {
  /** From the first byte of the POST to onSuccess (the last PATCH answered: the file committed). */
  seconds: number;
  /** The upload's URL: GET it for the file object. */
  url: string;
  requests: TusRequestTiming[];
}

export interface TusUploadOptions {
  chunkBytes: number;
  metadata: Record<string, string>;
  /** Keep-alive agent for every request of the upload. */
  agent: Agent;
}

/**
 * Uploads `path` (`size` bytes) to the tus endpoint. No retries: a failed
 * request fails the upload (and terminates it, so its parts do not wait for
 * the sweep), because a retry inside a timed transfer would hide in its time.
 */
export function tusUpload(
  endpoint: string,
  path: string,
  size: number,
  opts: TusUploadOptions,
): Promise<TusTransfer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const stack = new TimedHttpStack(opts.agent, started);
    // tus-js-client's types leave out Node's Readable, which its Node build takes.
    const file = createReadStream(path) as unknown as tus.Upload['file'];
    const upload = new tus.Upload(file, {
      endpoint,
      uploadSize: size,
      chunkSize: opts.chunkBytes,
      metadata: opts.metadata,
      httpStack: stack,
      retryDelays: null,
      storeFingerprintForResuming: false,
      onSuccess: () =>
        resolve({
          seconds: (performance.now() - started) / 1000,
          url: upload.url!,
          requests: stack.requests,
        }),
      onError: (err) => {
        void upload.abort(true).catch(() => {});
        reject(err);
      },
    });
    upload.start();
  });
}

/** tus-js-client's Node HTTP stack, each request's times recorded. */
class TimedHttpStack implements tus.HttpStack {
  readonly requests: TusRequestTiming[] = [];
  private readonly inner: tus.HttpStack;

  constructor(
    agent: Agent,
    private readonly origin: number,
  ) {
    this.inner = new tus.DefaultHttpStack({ agent });
  }

  createRequest(method: string, url: string): tus.HttpRequest {
    return new TimedRequest(this.inner.createRequest(method, url), (t) =>
      this.requests.push({
        ...t,
        startMs: t.startMs - this.origin,
        sentMs: t.sentMs - this.origin,
        answeredMs: t.answeredMs - this.origin,
      }),
    );
  }

  getName(): string {
    return 'TimedHttpStack';
  }
}

class TimedRequest implements tus.HttpRequest {
  constructor(
    private readonly inner: tus.HttpRequest,
    private readonly record: (t: TusRequestTiming) => void,
  ) {}

  async send(body: unknown): Promise<tus.HttpResponse> {
    const startMs = performance.now();
    let sentMs = startMs;
    const answer = this.inner.send(body);
    // send() makes its ClientRequest synchronously, in the promise's executor.
    const req = this.inner.getUnderlyingObject() as ClientRequest | null;
    req?.once('finish', () => (sentMs = performance.now()));
    const res = await answer;
    this.record({
      method: this.inner.getMethod(),
      status: res.getStatus(),
      startMs,
      sentMs,
      answeredMs: performance.now(),
    });
    return res;
  }

  getMethod = () => this.inner.getMethod();
  getURL = () => this.inner.getURL();
  setHeader = (name: string, value: string) => this.inner.setHeader(name, value);
  getHeader = (name: string) => this.inner.getHeader(name);
  setProgressHandler = (handler: (bytesSent: number) => void) =>
    this.inner.setProgressHandler(handler);
  abort = () => this.inner.abort();
  getUnderlyingObject = () => this.inner.getUnderlyingObject();
}

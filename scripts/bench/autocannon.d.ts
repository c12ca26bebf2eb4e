/**
 * The slice of autocannon's programmatic API the bench uses. autocannon ships
 * no types and @types/autocannon is not a dependency, so this declares what
 * its README documents, no more.
 */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  namespace autocannon {
    interface RequestParams {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: Buffer | string;
    }

    interface Request extends RequestParams {
      /** Called before each request; returns the request to send. */
      setupRequest?: (
        req: RequestParams & { path: string },
        context: object,
      ) => RequestParams | null;
    }

    interface Options {
      url: string;
      connections?: number;
      /** Seconds. */
      duration?: number;
      /** Requests to send in all, spread over the connections; when set, duration is ignored. */
      amount?: number;
      /** ms between samples; autocannon notices the end of a run only at a sample. */
      sampleInt?: number;
      /** Seconds a response may take before it counts as a timeout. */
      timeout?: number;
      /** Requests per second offered across all connections (an open-loop rate). */
      overallRate?: number;
      pipelining?: number;
      method?: string;
      headers?: Record<string, string>;
      body?: Buffer | string;
      requests?: Request[];
      title?: string;
    }

    /** hdr-histogram-percentiles-obj shape; latency values are in ms. */
    interface Histogram {
      average: number;
      mean: number;
      stddev: number;
      min: number;
      max: number;
      total: number;
      p50: number;
      p90: number;
      p99: number;
      p99_9: number;
    }

    interface Result {
      title?: string;
      url: string;
      connections: number;
      /** Seconds. */
      duration: number;
      errors: number;
      timeouts: number;
      mismatches: number;
      non2xx: number;
      '1xx': number;
      '2xx': number;
      '3xx': number;
      '4xx': number;
      '5xx': number;
      statusCodeStats: Record<string, { count: number }>;
      latency: Histogram;
      requests: Histogram & { sent: number };
      throughput: Histogram;
    }

    interface Instance extends EventEmitter, PromiseLike<Result> {
      stop(): void;
    }
  }

  function autocannon(opts: autocannon.Options): autocannon.Instance;

  export = autocannon;
}

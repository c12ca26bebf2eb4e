/**
 * Metrics of the S3 port, in the gateway's registry (served by GET /metrics
 * on the main port, docs/metrics.md). The native API's per-route counter
 * cannot tell S3 requests apart (one catch-all route), so they are counted
 * here by operation, with the bytes on the wire each way. Bytes of stored
 * and sent files are in trove_upload_bytes_total and
 * trove_download_bytes_total as for the native API (ingest and send count them).
 */
import type { Socket } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import { METRIC_PREFIX as P } from '../../shared/metrics.js';
import type { S3Operation } from './s3-request.js';

/** Label of a request that could not be routed (a bad bucket name, an unparsable URI). */
export const UNROUTED = 'unrouted';

export class S3Metrics {
  private readonly requests: Counter<'operation' | 'status'>;
  private readonly bytes: Counter<'direction'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: `${P}s3_requests_total`,
      help: 'Requests answered on the S3 port, by S3 operation (unrouted: no operation could be read from the request) and status',
      labelNames: ['operation', 'status'],
      registers: [registry],
    });
    this.bytes = new Counter({
      name: `${P}s3_bytes_total`,
      help: 'Bytes on the wire of the S3 port: request bodies read (in), responses written with their headers (out)',
      labelNames: ['direction'],
      registers: [registry],
    });
    for (const direction of ['in', 'out']) this.bytes.inc({ direction }, 0);
  }

  /** What each connection's socket had read and written when its last exchange was counted. */
  private readonly counted = new WeakMap<Socket, { read: number; written: number }>();

  /**
   * Counts a request whose response has gone out (or whose client left),
   * with the status written: s3-app.ts calls it from the request log's end,
   * so even handlers that write to the socket themselves (GetObject) are
   * counted. Bytes are the socket's own counts since its previous exchange
   * (an HTTP/1.1 connection carries one at a time): headers included, and
   * the body bytes that came in with them.
   */
  record(operation: S3Operation | undefined, status: number, socket: Socket): void {
    this.requests.inc({ operation: operation ?? UNROUTED, status: String(status) });
    this.countBytes(socket);
  }

  private countBytes(socket: Socket): void {
    const before = this.counted.get(socket) ?? { read: 0, written: 0 };
    const now = { read: socket.bytesRead, written: socket.bytesWritten };
    this.bytes.inc({ direction: 'in' }, Math.max(0, now.read - before.read));
    this.bytes.inc({ direction: 'out' }, Math.max(0, now.written - before.written));
    this.counted.set(socket, now);
  }
}

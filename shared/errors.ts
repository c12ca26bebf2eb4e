/**
 * Typed errors. Every error a client may see is a TroveError carrying its wire
 * code and HTTP status; the services' one `onError` handler (shared/http.ts)
 * answers with that status and the error's `body()`, which is
 * `{"error":{"code","message"}}` but for a storage node's failed write (its
 * replica report). Anything else is a bug: logged, 500.
 */
import type { PutReport } from './node-protocol.js';

export class TroveError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }

  /** The JSON the error answers with. */
  body(): object {
    return errorBody(this.code, this.message);
  }
}

export class BadRequestError extends TroveError {
  constructor(message: string, code = 'BAD_REQUEST', options?: ErrorOptions) {
    super(code, 400, message, options);
  }
}

export class UnauthorizedError extends TroveError {
  constructor(message = 'missing or invalid credentials', code = 'UNAUTHORIZED') {
    super(code, 401, message);
  }
}

export class ForbiddenError extends TroveError {
  constructor(message: string, code = 'FORBIDDEN') {
    super(code, 403, message);
  }
}

export class NotFoundError extends TroveError {
  constructor(message = 'not found', code = 'NOT_FOUND') {
    super(code, 404, message);
  }
}

export class GoneError extends TroveError {
  constructor(code: string, message: string) {
    super(code, 410, message);
  }
}

export class PayloadTooLargeError extends TroveError {
  constructor(message: string) {
    super('PAYLOAD_TOO_LARGE', 413, message);
  }

  /** A file over the byte limit. */
  static forBytes(limit: number): PayloadTooLargeError {
    return new PayloadTooLargeError(`the file is larger than the upload limit of ${limit} bytes`);
  }
}

export class UnsupportedMediaTypeError extends TroveError {
  constructor(message: string) {
    super('UNSUPPORTED_MEDIA_TYPE', 415, message);
  }
}

export class RangeNotSatisfiableError extends TroveError {
  constructor(readonly size: number) {
    super(
      'RANGE_NOT_SATISFIABLE',
      416,
      `the requested range is outside the ${size} bytes of the file`,
    );
  }
}

/** The sha256 of received bytes differs from the one the sender expected. */
export class ChecksumMismatchError extends TroveError {
  constructor(expected: string, actual: string) {
    super('CHECKSUM_MISMATCH', 422, `expected sha256 ${expected}, received ${actual}`);
  }
}

/**
 * A stored blob failed its checksum when read. The node has quarantined it,
 * so as far as readers go it no longer has the blob: 404, with its own code.
 */
export class CorruptBlobError extends TroveError {
  constructor(key: string, expected: string, actual: string) {
    super(
      'CORRUPT_BLOB',
      404,
      `blob ${key} failed its checksum (expected ${expected}, read ${actual}) and was quarantined`,
    );
  }
}

/**
 * A storage node could not store a blob written to it. Its PUT still answers
 * the chain's report, not an error body: the sender reads every node's outcome
 * from it. The status is that of the node's own failure: 422 a checksum
 * mismatch, 507 a full disk, 500 anything else.
 */
export class BlobNotStoredError extends TroveError {
  constructor(
    readonly report: PutReport,
    failure: unknown,
  ) {
    const typed = failure instanceof TroveError ? failure : undefined;
    super(
      typed?.code ?? 'BLOB_NOT_STORED',
      typed?.status ?? 500,
      `blob ${report.key} not stored: ${failure instanceof Error ? failure.message : String(failure)}`,
      { cause: failure },
    );
  }

  override body(): PutReport {
    return this.report;
  }
}

/** A per-client rate limit refused the request; the error handler sends `Retry-After`. */
export class TooManyRequestsError extends TroveError {
  constructor(
    message: string,
    /** Whole seconds until a request from this client would be allowed (at least 1). */
    readonly retryAfterSeconds: number,
  ) {
    super('RATE_LIMITED', 429, message);
  }
}

/** Not enough healthy storage nodes to place or read an object. */
export class UnavailableError extends TroveError {
  constructor(message: string, code = 'SERVICE_UNAVAILABLE', options?: ErrorOptions) {
    super(code, 503, message, options);
  }
}

/** An upload's row stopped being `pending` before its commit (a cleanup took it for abandoned). */
export class UploadAbortedError extends UnavailableError {
  constructor(id: string) {
    super(`upload ${id} was cleaned up before it could commit; send it again`, 'UPLOAD_ABORTED');
  }
}

export class InsufficientStorageError extends TroveError {
  constructor(message = 'the storage node is out of disk space', options?: ErrorOptions) {
    super('INSUFFICIENT_STORAGE', 507, message, options);
  }
}

/**
 * Whether a failure may go by itself: a dependency unavailable (503: the
 * database, RabbitMQ, every node holding a copy) or a disk full (507). A job
 * that fails so is tried again later instead of being dead-lettered.
 */
export function isTransient(err: unknown): boolean {
  return err instanceof TroveError && (err.status === 503 || err.status === 507);
}

/** The client closed the connection before the exchange completed; nobody is left to answer. */
export class ClientGoneError extends TroveError {
  constructor() {
    super('CLIENT_GONE', 499, 'the client closed the connection');
  }
}

/** A request body arrived slower than the minimum rate and was cut off (shared/min-rate.ts). */
export class BodyTooSlowError extends TroveError {
  constructor(message: string) {
    super('BODY_TOO_SLOW', 408, message);
  }
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/**
 * True for SQLite's "database is locked" once busy_timeout ran out: another
 * process (a gateway, the worker) held the write lock that long. A passing
 * state under load, not a bug: the request can be tried again.
 */
export function isDatabaseBusy(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}

/** True for errors caused by a peer going away, not by a bug of ours. */
export function isDisconnect(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return (
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    code === 'ECONNABORTED' ||
    err instanceof ClientGoneError ||
    (err as Error | null)?.name === 'AbortError'
  );
}

/**
 * The chaos drill's history: every client operation as it was invoked and
 * how it ended, in the style of Jepsen's histories. The checker
 * (checker.ts) reads nothing else but this and the final state read after
 * healing, so a failing run can be re-checked from its saved history.
 *
 * Outcomes:
 * - `ok`: it happened (201 upload, 200/206 download or thumbnail, 204 delete).
 *   A download is `ok` as soon as its status and headers came: the grant
 *   happened, even if the body was then cut (`bodyComplete: false`).
 * - `fail`: it surely did not happen: a 4xx that says so (404, 410, 416, 429, 400, 403, 413, 415).
 * - `info`: unknown: a 5xx, a timeout, a reset connection; it may or may not
 *   have happened (an `info` download may have spent a download).
 */

export type Outcome = 'ok' | 'fail' | 'info';

export type OpKind = 'upload' | 'download' | 'delete' | 'thumbnail';

/** `run`: traffic while faults happen; `final`: the reads after healing. */
export type Phase = 'run' | 'final';

export interface Op {
  /** Position in the history, in invoke order (0, 1, 2, …). */
  index: number;
  /** Which client sent it (`c1`, `c2`, … or `final`). */
  process: string;
  kind: OpKind;
  phase: Phase;
  /**
   * The client's name for the content: an upload's own key; a download,
   * delete or thumbnail names the key of the upload it is about.
   */
  key: string;
  /** The Trove file id: from the 201 of an `ok` upload; always set on the other kinds. */
  file?: string;
  /** Base URL of the gateway it went to. */
  gateway: string;
  /** Upload: content length; limits asked for (0 = unlimited). */
  size?: number;
  maxDownloads?: number;
  ttlSeconds?: number;
  /** Download: the byte range asked for, inclusive ([start, end]); absent = the whole file. */
  range?: [number, number];
  /** Epoch milliseconds: when the request was sent, and when its outcome was known. */
  invoke: number;
  complete: number;
  outcome: Outcome;
  /** The HTTP status, when an answer came. */
  status?: number;
  /** The `error` code of a JSON error body (FILE_EXPIRED, DOWNLOAD_LIMIT_REACHED, …). */
  code?: string;
  /** What went wrong when no answer came (`timeout`, `ECONNRESET`, …), or a body cut short. */
  error?: string;
  /**
   * Upload: sha256 of the content sent. Download/thumbnail: sha256 of the
   * body bytes received (all of them, or the prefix received when cut).
   */
  sha256?: string;
  /** Download/thumbnail: body bytes received. */
  bytes?: number;
  /** Download/thumbnail: whether the body reached its Content-Length. */
  bodyComplete?: boolean;
  /** Download: `X-Downloads-Left` of a 200/206 or 410 (null when `unlimited`). */
  downloadsLeft?: number | null;
  /** Thumbnail/download: the ETag header. */
  etag?: string;
  /** Upload `ok`: the file's `expires_at` as the 201 said, epoch ms. */
  expiresAt?: number;
}

/** One file as the metadata store and the storage nodes tell after healing. */
export interface FinalFile {
  file: string;
  /** `active`, `exhausted`, `expired`, `deleted`. */
  status: string;
  maxDownloads: number;
  downloadsUsed: number;
  /** Epoch ms. */
  expiresAt: number;
  /** The nodes the layout places it on (REPLICATION_FACTOR of them when there are enough). */
  placement: string[];
  /** Nodes with an `ok` replica row whose blob is on disk with the file's sha256. */
  verified: string[];
}

/** What the runner read once everything was healed. */
export interface FinalState {
  /** When the last fault was healed (epoch ms). */
  healedAt: number;
  /** When every live file had its full count of verified copies placed as the layout says; undefined if never. */
  redundantAt?: number;
  /** How many copies a live file must have. */
  replicationFactor: number;
  /** Every file the metadata store knows, by id. */
  files: FinalFile[];
}

/** A fault as it was injected (the report and the checker's excerpts show them). */
export interface FaultRecord {
  kind: string;
  target: string;
  /** Epoch ms: injected, healed (undefined when instantaneous or never healed). */
  start: number;
  end?: number;
  /** What went wrong injecting or healing it, if anything. */
  error?: string;
}

/** What a client knows when it sends an operation. */
export type Invocation = Omit<Op, 'index' | 'invoke' | 'complete' | 'outcome'>;

/** The history as it is being recorded: ops in invoke order, each completed once. */
export class HistoryLog {
  readonly ops: Op[] = [];

  invoke(what: Invocation): Op {
    const op = {
      ...what,
      index: this.ops.length,
      invoke: Date.now(),
      complete: 0,
      outcome: 'info',
    } as Op;
    this.ops.push(op);
    return op;
  }

  complete(op: Op, outcome: Outcome, fields: Partial<Op> = {}): Op {
    Object.assign(op, fields, { outcome, complete: Date.now() });
    return op;
  }
}

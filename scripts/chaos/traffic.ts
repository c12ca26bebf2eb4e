/**
 * The drill's clients: each a loop of uploads (mixed limits, short TTLs),
 * downloads (whole and ranged), thumbnail reads and deletes, against either
 * gateway, every one recorded in the history with what came back. A client
 * never retries: a retry is another operation.
 */
import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import type { Contents } from './content.js';
import type { HistoryLog, Op, Outcome } from './history.js';
import { Random } from './random.js';

/** A user gives up after this; the operation is then `info` (it may have happened). */
export const OP_TIMEOUT_MS = 10_000;
/** A client's pause after an operation of unknown outcome (a 503, a timeout). */
const BACKOFF_MS = 250;

/** A file an `ok` upload made: what later operations pick from. */
export interface KnownFile {
  key: string;
  id: string;
  size: number;
  deleteToken: string;
  /** An `ok` delete of it was answered (later deletes are pointless). */
  deleted: boolean;
}

export interface TrafficDeps {
  history: HistoryLog;
  contents: Contents;
  gateways: string[];
  seed: number;
  dispatcher: Dispatcher;
}

const OPS = { upload: 3, download: 5, thumbnail: 1, delete: 0.6 } as const;

/** What the traffic asks of an upload: limits of every kind, and lifetimes that end during the run. */
function uploadOptions(rng: Random): { maxDownloads: number; ttlSeconds: number } {
  const maxDownloads = rng.pick([0, 1, 1, 2, 3, 3, 5]);
  const ttlSeconds = rng.next() < 0.35 ? rng.int(3, 15) : 3600;
  return { maxDownloads, ttlSeconds };
}

/** An answer's failure as the history records it: refused = surely not done; else unknown. */
function requestError(err: unknown): { outcome: Outcome; error: string } {
  const e = err as { code?: string; name?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? e.name ?? 'error';
  if (code === 'ECONNREFUSED') return { outcome: 'fail', error: code };
  return {
    outcome: 'info',
    error: e.name === 'TimeoutError' || code === 'UND_ERR_ABORTED' ? 'timeout' : code,
  };
}

function statusOutcome(status: number): Outcome {
  return status >= 500 ? 'info' : 'fail';
}

function errorCode(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: { code?: string } };
    return body.error?.code;
  } catch {
    return undefined;
  }
}

function downloadsLeft(header: string | string[] | undefined): number | null | undefined {
  if (typeof header !== 'string') return undefined;
  return header === 'unlimited' ? null : Number(header);
}

export class Traffic {
  readonly files: KnownFile[] = [];
  private stopping = false;
  private running: Promise<void>[] = [];

  constructor(private readonly deps: TrafficDeps) {}

  start(clients: number): void {
    for (let i = 1; i <= clients; i++)
      this.running.push(this.client(`c${i}`, Random.of(this.deps.seed, 1000 + i)));
  }

  /** Stops every client after its operation under way. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  private async client(name: string, rng: Random): Promise<void> {
    let n = 0;
    while (!this.stopping) {
      const gateway = rng.pick(this.deps.gateways);
      const op = await this.next(name, rng, gateway, () => `${name}-${++n}`);
      // A user backs off a moment after an unknown outcome (a 503, a timeout) before going on.
      if (op?.outcome === 'info') await new Promise((r) => setTimeout(r, BACKOFF_MS));
    }
  }

  private async next(
    name: string,
    rng: Random,
    gateway: string,
    newKey: () => string,
  ): Promise<Op | undefined> {
    const kind = this.files.length === 0 ? 'upload' : rng.weighted(OPS);
    if (kind === 'upload') return this.upload(name, newKey(), gateway, uploadOptions(rng));
    if (kind === 'delete') {
      const live = this.files.filter((f) => !f.deleted);
      return live.length > 0 ? this.delete(name, rng.pick(live), gateway) : undefined;
    }
    const file = this.pickFile(rng);
    if (kind === 'thumbnail') return this.thumbnail(name, file, gateway);
    return this.download(name, file, gateway, this.pickRange(rng, file.size), 'run');
  }

  /** Mostly recent files (whose limits and lifetimes are still in play), sometimes any. */
  private pickFile(rng: Random): KnownFile {
    const recent = this.files.slice(-40);
    return rng.next() < 0.7 ? rng.pick(recent) : rng.pick(this.files);
  }

  private pickRange(rng: Random, size: number): [number, number] | undefined {
    if (rng.next() >= 0.3) return undefined;
    const start = rng.int(0, size - 1);
    return [start, rng.int(start, Math.min(size - 1, start + 64 * 1024))];
  }

  async upload(
    process: string,
    key: string,
    gateway: string,
    opts: { maxDownloads: number; ttlSeconds: number },
  ): Promise<Op> {
    const body = this.deps.contents.of(key);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const op = this.deps.history.invoke({
      process,
      kind: 'upload',
      phase: 'run',
      key,
      gateway,
      size: body.length,
      sha256,
      ...opts,
    });
    const url = `${gateway}/upload/${key}.jpg?max_downloads=${opts.maxDownloads}&ttl=${opts.ttlSeconds}`;
    try {
      const res = await request(url, {
        method: 'PUT',
        body,
        headers: { 'content-type': 'image/jpeg' },
        dispatcher: this.deps.dispatcher,
        signal: AbortSignal.timeout(OP_TIMEOUT_MS),
      });
      const text = await res.body.text();
      if (res.statusCode !== 201)
        return this.deps.history.complete(op, statusOutcome(res.statusCode), {
          status: res.statusCode,
          code: errorCode(text),
        });
      const file = JSON.parse(text) as { id: string; expires_at: string; delete_token: string };
      this.files.push({
        key,
        id: file.id,
        size: body.length,
        deleteToken: file.delete_token,
        deleted: false,
      });
      return this.deps.history.complete(op, 'ok', {
        status: 201,
        file: file.id,
        expiresAt: Date.parse(file.expires_at),
      });
    } catch (err) {
      return this.deps.history.complete(op, ...completion(err));
    }
  }

  async download(
    process: string,
    file: KnownFile,
    gateway: string,
    range: [number, number] | undefined,
    phase: Op['phase'],
  ): Promise<Op> {
    const op = this.deps.history.invoke({
      process,
      kind: 'download',
      phase,
      key: file.key,
      file: file.id,
      gateway,
      ...(range && { range }),
    });
    return this.read(op, `${gateway}/download/${file.id}`, range);
  }

  async thumbnail(process: string, file: KnownFile, gateway: string): Promise<Op> {
    const op = this.deps.history.invoke({
      process,
      kind: 'thumbnail',
      phase: 'run',
      key: file.key,
      file: file.id,
      gateway,
    });
    return this.read(op, `${gateway}/files/${file.id}/thumbnail`, undefined);
  }

  /** GETs `url` and records the answer: status, headers, and the body's sha256 as far as it came. */
  private async read(op: Op, url: string, range: [number, number] | undefined): Promise<Op> {
    const { history, dispatcher } = this.deps;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        dispatcher,
        signal: AbortSignal.timeout(OP_TIMEOUT_MS),
        ...(range && { headers: { range: `bytes=${range[0]}-${range[1]}` } }),
      });
    } catch (err) {
      return history.complete(op, ...completion(err));
    }
    const left = downloadsLeft(res.headers['x-downloads-left']);
    const fields: Partial<Op> = {
      status: res.statusCode,
      ...(left !== undefined && { downloadsLeft: left }),
      ...(typeof res.headers.etag === 'string' && { etag: res.headers.etag }),
    };
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      const text = await res.body.text().catch(() => '');
      return history.complete(op, statusOutcome(res.statusCode), {
        ...fields,
        code: errorCode(text),
      });
    }
    // Headers came: the grant happened, whatever becomes of the body.
    const hash = createHash('sha256');
    let bytes = 0;
    let error: string | undefined;
    try {
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
    } catch (err) {
      error = requestError(err).error;
    }
    const length = Number(res.headers['content-length']);
    return history.complete(op, 'ok', {
      ...fields,
      sha256: hash.digest('hex'),
      bytes,
      bodyComplete: error === undefined && bytes === length,
      ...(error && { error }),
    });
  }

  async delete(process: string, file: KnownFile, gateway: string): Promise<Op> {
    const op = this.deps.history.invoke({
      process,
      kind: 'delete',
      phase: 'run',
      key: file.key,
      file: file.id,
      gateway,
    });
    try {
      const res = await request(`${gateway}/files/${file.id}`, {
        method: 'DELETE',
        headers: { 'x-delete-token': file.deleteToken },
        dispatcher: this.deps.dispatcher,
        signal: AbortSignal.timeout(OP_TIMEOUT_MS),
      });
      const text = await res.body.text();
      if (res.statusCode !== 204)
        return this.deps.history.complete(op, statusOutcome(res.statusCode), {
          status: res.statusCode,
          code: errorCode(text),
        });
      file.deleted = true;
      return this.deps.history.complete(op, 'ok', { status: 204 });
    } catch (err) {
      return this.deps.history.complete(op, ...completion(err));
    }
  }
}

function completion(err: unknown): [Outcome, Partial<Op>] {
  const { outcome, error } = requestError(err);
  return [outcome, { error }];
}

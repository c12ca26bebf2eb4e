/**
 * The drill's view of Trove as a user sees it: uploads of distinct images and
 * downloads checked byte for byte, every request counted, and every failure
 * recorded with its reason the moment it happens.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request, type Dispatcher } from 'undici';

/** A file the drill uploaded and must be able to get back. */
export interface StoredFile {
  id: string;
  sha256: string;
  size: number;
  /** Nodes the upload answer placed a replica on, whatever its state: where copies belong. */
  placement: string[];
  /** Of those, the nodes whose replica was `ok` at once. */
  replicasOk: string[];
  /** Drill phase when its upload was answered. */
  phase: string;
}

/** A request that did not do what it should, in words. */
export class RequestFailure extends Error {}

/** A user would wait no longer than this for an answer; longer is a failure. */
const TIMEOUT_MS = 30_000;
const PHOTO = readFileSync(join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'photo.jpg'));

/**
 * A real photo with a unique trailer after its end marker: still image/jpeg
 * by its magic bytes, but every upload is a distinct blob with its own sha256.
 */
export function uniquePhoto(tag: string): Buffer {
  return Buffer.concat([
    PHOTO,
    Buffer.from(`\ntrove-drill ${tag} ${randomBytes(8).toString('hex')}`),
  ]);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Counts of requests made and the failures among them, shared by the traffic and the checks. */
export class Tally {
  uploads = 0;
  downloads = 0;
  readonly failures: string[] = [];
  /** Failures printed as they happen; past this many, only counted (a dead gateway fails fast). */
  private static readonly PRINTED = 200;

  constructor(
    private readonly clock: () => number,
    private readonly phase: () => string,
  ) {}

  get requests(): number {
    return this.uploads + this.downloads;
  }

  fail(what: string, reason: string): void {
    const line = `t+${this.clock().toFixed(1)}s [${this.phase()}] ${what}: ${reason}`;
    this.failures.push(line);
    if (this.failures.length <= Tally.PRINTED) process.stderr.write(`[drill] FAILED ${line}\n`);
    else if (this.failures.length === Tally.PRINTED + 1)
      process.stderr.write('[drill] (further failures are counted, not printed)\n');
  }
}

export class TroveClient {
  constructor(
    private readonly gateway: string,
    private readonly dispatcher: Dispatcher,
    private readonly tally: Tally,
    private readonly phase: () => string,
  ) {}

  /** Uploads a distinct photo with unlimited downloads; undefined (and a recorded failure) if it was refused. */
  async upload(tag: string): Promise<StoredFile | undefined> {
    const body = uniquePhoto(tag);
    const url = `${this.gateway}/upload/drill-${tag}.jpg?max_downloads=0`;
    this.tally.uploads++;
    try {
      return await this.put(url, body);
    } catch (err) {
      this.tally.fail(`PUT ${url}`, reasonOf(err));
      return undefined;
    }
  }

  /** Downloads a file and checks status, length and sha256; false (and a recorded failure) otherwise. */
  async download(file: StoredFile): Promise<boolean> {
    const url = `${this.gateway}/download/${file.id}`;
    this.tally.downloads++;
    try {
      await this.get(url, file);
      return true;
    } catch (err) {
      this.tally.fail(`GET ${url}`, reasonOf(err));
      return false;
    }
  }

  private async put(url: string, body: Buffer): Promise<StoredFile> {
    const res = await request(url, {
      method: 'PUT',
      dispatcher: this.dispatcher,
      body,
      headers: { 'content-type': 'image/jpeg' },
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new RequestFailure(`${res.statusCode} ${text.slice(0, 300)}`);
    const answer = JSON.parse(text) as {
      id: string;
      sha256: string;
      size: number;
      replicas?: { node: string; state: string }[];
    };
    const hash = sha256(body);
    if (answer.sha256 !== hash || answer.size !== body.length) {
      throw new RequestFailure(
        `201, but Trove stored sha256 ${answer.sha256} / ${answer.size} bytes; sent ${hash} / ${body.length}`,
      );
    }
    const replicas = answer.replicas ?? [];
    return {
      id: answer.id,
      sha256: hash,
      size: body.length,
      placement: replicas.map((r) => r.node),
      replicasOk: replicas.filter((r) => r.state === 'ok').map((r) => r.node),
      phase: this.phase(),
    };
  }

  private async get(url: string, file: StoredFile): Promise<void> {
    const res = await request(url, {
      dispatcher: this.dispatcher,
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      throw new RequestFailure(`${res.statusCode} ${text.slice(0, 300)}`);
    }
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    const digest = hash.digest('hex');
    if (digest !== file.sha256 || bytes !== file.size) {
      throw new RequestFailure(
        `200 with wrong bytes: ${bytes} bytes, sha256 ${digest} (expected ${file.size}, ${file.sha256})`,
      );
    }
  }
}

/** A failure's reason as an operator wants to read it: the status and body, or the socket error. */
function reasonOf(err: unknown): string {
  if (err instanceof RequestFailure) return err.message;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code ?? e.cause?.code;
  return `connection error: ${code ? `${code} ` : ''}${e.message}`;
}

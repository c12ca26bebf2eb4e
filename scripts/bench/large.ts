/**
 * Large-object transfers, each timed from the first byte sent to the last
 * byte received. Bodies stream from disk and into a counting, hashing sink;
 * the bench never holds a large object in memory.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { request, type Dispatcher } from 'undici';

const CHUNK = 1024 * 1024;
/** Generous: a slow disk may take minutes for 3 × 256 MiB with fsync. */
const TIMEOUT_MS = 10 * 60_000;

export interface Transfer {
  seconds: number;
  status: number;
  /** Body bytes received (downloads). */
  bytes: number;
  /** sha256 of the body received (downloads). */
  sha256: string;
  /** The answer's body as text (uploads; first 4 KiB). */
  answer: string;
}

/** PUTs the file at `path` as the raw request body (`headers` added: an S3 request's signature). */
export async function putFile(
  url: string,
  path: string,
  size: number,
  dispatcher: Dispatcher,
  headers: Record<string, string> = {},
): Promise<Transfer> {
  const started = performance.now();
  const res = await request(url, {
    method: 'PUT',
    dispatcher,
    body: createReadStream(path, { highWaterMark: CHUNK }),
    headers: { 'content-type': 'image/jpeg', 'content-length': String(size), ...headers },
    headersTimeout: TIMEOUT_MS,
    bodyTimeout: TIMEOUT_MS,
  });
  const answer = (await res.body.text()).slice(0, 4096);
  return {
    seconds: (performance.now() - started) / 1000,
    status: res.statusCode,
    bytes: 0,
    sha256: '',
    answer,
  };
}

/** GETs `url` into a sink that only hashes and counts (`headers` added: an S3 request's signature). */
export async function getFile(
  url: string,
  dispatcher: Dispatcher,
  headers: Record<string, string> = {},
): Promise<Transfer> {
  const started = performance.now();
  const res = await request(url, {
    dispatcher,
    headers,
    headersTimeout: TIMEOUT_MS,
    bodyTimeout: TIMEOUT_MS,
  });
  const hash = createHash('sha256');
  let bytes = 0;
  const sink = new Writable({
    highWaterMark: CHUNK,
    write(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done();
    },
  });
  await pipeline(res.body, sink);
  return {
    seconds: (performance.now() - started) / 1000,
    status: res.statusCode,
    bytes,
    sha256: hash.digest('hex'),
    answer: '',
  };
}

/**
 * The replication floor: the source read once and written to three files
 * at once, then each made durable with fdatasync, which is the least a
 * three-replica store on this disk must do. Returns the wall time.
 */
export async function threeFsyncedFiles(
  source: string,
  dir: string,
): Promise<{ seconds: number; paths: string[] }> {
  const paths = [1, 2, 3].map((i) => join(dir, `replica-${i}.jpg`));
  const started = performance.now();
  const files = await Promise.all(paths.map((p) => open(p, 'w')));
  try {
    await pipeline(createReadStream(source, { highWaterMark: CHUNK }), fanOut(files));
    await Promise.all(files.map((f) => f.datasync()));
  } finally {
    await Promise.all(files.map((f) => f.close()));
  }
  return { seconds: (performance.now() - started) / 1000, paths };
}

/** A sink that writes every chunk to each file in parallel, sequentially within a file. */
function fanOut(files: FileHandle[]): Writable {
  let offset = 0;
  return new Writable({
    highWaterMark: CHUNK,
    write(chunk: Buffer, _enc, done) {
      Promise.all(files.map((f) => writeAll(f, chunk, offset)))
        .then(() => {
          offset += chunk.length;
          done();
        })
        .catch(done);
    },
  });
}

async function writeAll(file: FileHandle, chunk: Buffer, position: number): Promise<void> {
  for (let done = 0; done < chunk.length;) {
    const { bytesWritten } = await file.write(chunk, done, chunk.length - done, position + done);
    done += bytesWritten;
  }
}

/** fsyncs a file outside any timed region, so its dirty pages do not slow the next measurement. */
export async function flushFile(path: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

/**
 * GETs `url` with curl into /dev/null, unhashed: a client far cheaper than
 * any Node one (about 3x on this kind of machine), to show where the Node
 * client, rather than the server, sets the large-download figure.
 */
export async function curlGet(curl: string, url: string): Promise<Transfer> {
  const { stdout } = await promisify(execFile)(curl, [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{size_download} %{time_total}',
    url,
  ]);
  const [status, bytes, seconds] = stdout.trim().split(' ').map(Number);
  return { seconds: seconds!, status: status!, bytes: bytes!, sha256: '', answer: '' };
}

/** A file a suite uploaded, to delete at its end. */
export interface Uploaded {
  id: string;
  token: string;
}

/** Deletes `files` (with their delete tokens) so their bytes leave the nodes now; answers what went wrong. */
export async function deleteFiles(
  base: string,
  files: Uploaded[],
  dispatcher: Dispatcher,
): Promise<string[]> {
  const problems: string[] = [];
  for (const { id, token } of files) {
    const url = `${base}/files/${id}`;
    try {
      const res = await request(url, {
        method: 'DELETE',
        headers: { 'x-delete-token': token },
        dispatcher,
      });
      await res.body.dump();
      if (res.statusCode !== 204) problems.push(`DELETE ${url} → ${res.statusCode}`);
    } catch (err) {
      problems.push(`DELETE ${url}: ${(err as Error).message}`);
    }
  }
  return problems;
}

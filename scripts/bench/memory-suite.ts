/**
 * `--only memory`: minutes of mixed traffic, the kind after which a gateway
 * was found resting far above its size after start (review item 13), and
 * each process's RSS at rest before it, at its peak, and at rest after it.
 *
 * Five clients at once, each looping until the time is up: 64 KiB uploads,
 * 64 KiB downloads (20 files), 60 MiB uploads, 60 MiB downloads, and
 * multipart uploads 16 MiB over MAX_UPLOAD_BYTES, which the gateway refuses
 * with 413 while they stream. That last client runs only when the limit is
 * at most 256 MiB (each refusal streams the limit first): start the cluster
 * with MAX_UPLOAD_BYTES=64MB to include it, as the review did.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { progress, safeJson, type BenchContext } from './context.js';
import { deleteFiles, getFile, putFile, type Transfer, type Uploaded } from './large.js';
import { restingRss, type MemoryAround } from './memory.js';
import { jpegBody, writeLargeFile } from './payload.js';

const MIB = 2 ** 20;
const LARGE = 60 * MIB;
const SMALL = 64 * 1024;
/** Refusals stream the whole limit before their 413: above this, the client is left out. */
const MAX_REFUSED_LIMIT = 256 * MIB;
/** The mixed run lasts this many times --duration (2 minutes by default). */
const DURATION_FACTOR = 12;
const TIMEOUT_MS = 5 * 60_000;

export interface MemoryResults {
  seconds: number;
  /** Completed operations by kind and outcome, e.g. "small PUT 201", "refused 413". */
  counts: Record<string, number>;
  memory: MemoryAround;
}

export async function runMemorySuite(ctx: BenchContext): Promise<MemoryResults> {
  const seconds = ctx.opts.durationS * DURATION_FACTOR;
  const source = join(ctx.scratch, 'memory-large.jpg');
  await writeLargeFile(source, LARGE);
  const limit = await maxUploadBytes(ctx);
  const refusals = limit !== undefined && limit <= MAX_REFUSED_LIMIT;
  if (!refusals) {
    ctx.notes.push(
      `memory: no uploads refused with 413 (the gateway's MAX_UPLOAD_BYTES is ${limit ?? 'unknown'}; ` +
        `at most ${MAX_REFUSED_LIMIT / MIB} MiB includes them, e.g. MAX_UPLOAD_BYTES=64MB)`,
    );
  }
  const counts: Record<string, number> = {};
  const count = (what: string) => (counts[what] = (counts[what] ?? 0) + 1);
  const uploads: Uploaded[] = [];
  const smallIds: string[] = [];
  for (let i = 0; i < 20; i++) {
    const got = await uploadSmall(ctx, `bench-memory-${i}.jpg`);
    if (got) smallIds.push(got.id);
  }
  const large = await uploadLarge(ctx, source, 'bench-memory-large.jpg');
  if (large) uploads.push(large);

  progress('each process at rest before the mixed traffic…');
  const before = await restingRss(ctx, large ? [large.id] : []);
  ctx.sampler.setPhase('memory');
  progress(`mixed traffic for ${seconds} s…`);
  const end = Date.now() + seconds * 1000;
  const loop = async (step: () => Promise<void>) => {
    while (Date.now() < end) await step();
  };
  const base = `${ctx.trove.origin}${ctx.trove.prefix}`;
  await Promise.all([
    loop(async () => {
      const got = await uploadSmall(ctx, 'bench-memory.jpg');
      count(`64 KiB PUT ${got ? 201 : 'failed'}`);
    }),
    loop(async () => {
      for (const id of smallIds) {
        const got = await transfer(ctx, `GET ${base}/download/${id}`, () =>
          getFile(`${base}/download/${id}`, ctx.dispatcher),
        );
        count(`64 KiB GET ${got?.status ?? 'failed'}`);
      }
    }),
    loop(async () => {
      const got = await uploadLarge(ctx, source, 'bench-memory-large.jpg');
      if (got) uploads.push(got);
      count(`60 MiB PUT ${got ? 201 : 'failed'}`);
    }),
    loop(async () => {
      if (!large) return;
      const url = `${base}/download/${large.id}`;
      const got = await transfer(ctx, `GET ${url}`, () => getFile(url, ctx.dispatcher));
      count(`60 MiB GET ${got?.status ?? 'failed'}`);
    }),
    refusals
      ? loop(async () => {
          count(await refusedUpload(ctx, limit!));
        })
      : Promise.resolve(),
  ]);

  progress('each process at rest after the mixed traffic…');
  // The worker takes the uploads' images in order: the last ones done means all are.
  const after = await restingRss(
    ctx,
    uploads.slice(-5).map((u) => u.id),
  );
  const memory = { before, peak: ctx.sampler.peaksOf('memory'), after };
  ctx.sampler.setPhase('memory, deleting');
  ctx.notes.push(
    ...(await deleteFiles(`${ctx.trove.origin}${ctx.trove.prefix}`, uploads, ctx.dispatcher)),
  );
  await rm(source, { force: true });
  return { seconds, counts, memory };
}

async function maxUploadBytes(ctx: BenchContext): Promise<number | undefined> {
  const res = await request(`${ctx.trove.origin}${ctx.trove.prefix}/api/config`, {
    dispatcher: ctx.dispatcher,
  });
  const body = safeJson(await res.body.text()) as { max_upload_bytes?: number } | undefined;
  return body?.max_upload_bytes;
}

async function transfer(
  ctx: BenchContext,
  what: string,
  run: () => Promise<Transfer>,
): Promise<Transfer | undefined> {
  try {
    const got = await run();
    if (got.status >= 300) ctx.failures.push(`${what} → ${got.status} ${got.answer.slice(0, 200)}`);
    return got;
  } catch (err) {
    ctx.failures.push(`${what}: ${(err as Error).message}`);
    return undefined;
  }
}

function uploaded(ctx: BenchContext, url: string, got: Transfer | undefined): Uploaded | undefined {
  const answer = got && (safeJson(got.answer) as { id?: string; delete_token?: string });
  if (got?.status === 201 && answer?.id && answer.delete_token)
    return { id: answer.id, token: answer.delete_token };
  if (got?.status === 201) ctx.failures.push(`PUT ${url}: 201 without an id and delete token`);
  return undefined;
}

async function uploadSmall(ctx: BenchContext, name: string): Promise<Uploaded | undefined> {
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/upload/${name}?max_downloads=0`;
  const got = await transfer(ctx, `PUT ${url}`, async () => {
    const started = performance.now();
    const res = await request(url, {
      method: 'PUT',
      body: jpegBody(SMALL),
      headers: { 'content-type': 'image/jpeg' },
      dispatcher: ctx.dispatcher,
    });
    const answer = await res.body.text();
    const seconds = (performance.now() - started) / 1000;
    return { seconds, status: res.statusCode, bytes: 0, sha256: '', answer };
  });
  return uploaded(ctx, url, got);
}

async function uploadLarge(
  ctx: BenchContext,
  source: string,
  name: string,
): Promise<Uploaded | undefined> {
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/upload/${name}?max_downloads=0`;
  const got = await transfer(ctx, `PUT ${url}`, () => putFile(url, source, LARGE, ctx.dispatcher));
  return uploaded(ctx, url, got);
}

/**
 * A multipart upload 16 MiB over the limit, its size unknown to the gateway
 * until it has read that far: "refused 413", or "refused, cut" when the
 * gateway closed the connection before the client read its answer.
 */
async function refusedUpload(ctx: BenchContext, limit: number): Promise<string> {
  const boundary = `bench${randomBytes(8).toString('hex')}`;
  const chunk = jpegBody(MIB);
  const size = limit + 16 * MIB;
  async function* body() {
    yield Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n` +
        'Content-Type: image/jpeg\r\n\r\n',
    );
    for (let sent = 0; sent < size; sent += chunk.length) yield chunk;
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  const url = `${ctx.trove.origin}${ctx.trove.prefix}/upload`;
  try {
    const res = await request(url, {
      method: 'POST',
      body: Readable.from(body()),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      dispatcher: ctx.dispatcher,
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
    });
    await res.body.dump();
    if (res.statusCode !== 413)
      ctx.failures.push(`POST ${url} of ${size} bytes → ${res.statusCode}`);
    return `refused ${res.statusCode}`;
  } catch {
    return 'refused, cut';
  }
}

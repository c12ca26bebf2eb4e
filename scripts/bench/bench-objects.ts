/**
 * What the repair and rebalance suites move around and what they measure the
 * worker against: 1,000 objects of 64 KiB and 10 of 50 MB, uploaded with
 * max_downloads=0 (each answer's sha256 checked), and the plainest copy of a
 * blob from node to node: GET from a node that holds it, streamed into a PUT
 * to another under a key no file owns, with the expected sha256, no queue,
 * lock, metadata or rate limit.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCommonConfig, type NodeAddress } from '../../shared/config.js';
import { loadClusterSecret } from '../../shared/cluster-secret.js';
import { NodeClient } from '../../shared/node-client.js';
import { forEachLimited } from '../cluster-control.js';
import { progress, safeJson, type BenchContext } from './context.js';
import { deleteFiles, putFile } from './large.js';
import { jpegBody, sha256, writeLargeFile } from './payload.js';
import { SMALL_BYTES, uploadOneWithToken } from './small-suite.js';

export const SMALL_COUNT = 1000;
export const LARGE_COUNT = 10;
export const LARGE_BYTES = 50e6;
const UPLOAD_CONCURRENCY = 8;

export interface BenchObject {
  key: string;
  sha256: string;
  size: number;
  /** Its delete token, so a suite can delete it at its end. */
  token: string;
}

/** Copies made over a time: objects/s and MB/s. */
export interface CopyRate {
  seconds: number;
  objects: number;
  bytes: number;
  objectsPerS: number;
  /** 10^6 bytes per second. */
  mbPerS: number;
}

export function rateOf(seconds: number, objects: number, bytes: number): CopyRate {
  const s = Math.max(seconds, 1e-3);
  return { seconds, objects, bytes, objectsPerS: objects / s, mbPerS: bytes / s / 1e6 };
}

/**
 * The 1,010 objects, named `bench-<suite>-…`; undefined (a failure recorded)
 * if any upload failed.
 */
export async function uploadObjects(
  ctx: BenchContext,
  suite: string,
): Promise<BenchObject[] | undefined> {
  const objects: BenchObject[] = [];
  try {
    progress(`${suite}: uploading ${SMALL_COUNT} objects of 64 KiB…`);
    const indexes = Array.from({ length: SMALL_COUNT }, (_, i) => i);
    await forEachLimited(indexes, UPLOAD_CONCURRENCY, async (i) => {
      const body = jpegBody(SMALL_BYTES);
      const hash = sha256(body);
      const { id, token } = await uploadOneWithToken(ctx, `bench-${suite}-${i}.jpg`, body, hash);
      objects.push({ key: id, sha256: hash, size: SMALL_BYTES, token });
    });
    progress(`${suite}: uploading ${LARGE_COUNT} objects of 50 MB…`);
    for (let i = 0; i < LARGE_COUNT; i++) objects.push(await uploadLarge(ctx, suite, i));
    return objects;
  } catch (err) {
    ctx.failures.push(`${suite}: uploading the objects: ${(err as Error).message}`);
    return undefined;
  }
}

/** A fresh 50 MB file each time (distinct bytes, so distinct blobs), streamed from scratch space. */
async function uploadLarge(ctx: BenchContext, suite: string, i: number): Promise<BenchObject> {
  const path = join(ctx.scratch, `${suite}-${i}.jpg`);
  try {
    const hash = await writeLargeFile(path, LARGE_BYTES);
    const url = `${ctx.trove.origin}${ctx.trove.prefix}/upload/bench-${suite}-large-${i}.jpg?max_downloads=0`;
    const put = await putFile(url, path, LARGE_BYTES, ctx.dispatcher);
    const answer = safeJson(put.answer) as
      { id?: string; sha256?: string; delete_token?: string } | undefined;
    if (put.status !== 201 || !answer?.id || answer.sha256 !== hash) {
      throw new Error(`PUT ${url} → ${put.status} ${put.answer.slice(0, 200)}`);
    }
    return { key: answer.id, sha256: hash, size: LARGE_BYTES, token: answer.delete_token ?? '' };
  } finally {
    await rm(path, { force: true });
  }
}

/** Deletes the suite's files through the gateway (their blobs leave the nodes with the worker's next delete job). */
export async function deleteObjects(ctx: BenchContext, objects: BenchObject[]): Promise<string[]> {
  const files = objects.filter((o) => o.token).map((o) => ({ id: o.key, token: o.token }));
  return deleteFiles(`${ctx.trove.origin}${ctx.trove.prefix}`, files, ctx.dispatcher);
}

/** One blob to copy plainly: read from `source`, written to `target` under a fresh key. */
export interface PlainCopyJob {
  source: NodeAddress;
  target: NodeAddress;
  blob: Pick<BenchObject, 'key' | 'sha256' | 'size'>;
}

/**
 * The reference: every job's blob copied by this process, GET → PUT streamed
 * with the expected sha256 (what the worker does for each copy, without its
 * queue, lock, metadata and rate limit), `concurrency` at a time, in the
 * jobs' order, under keys no file owns, removed afterwards.
 */
export async function plainCopy(
  ctx: BenchContext,
  suite: string,
  storageDir: string,
  jobs: PlainCopyJob[],
  concurrency: number,
): Promise<CopyRate | undefined> {
  const common = loadCommonConfig(process.env);
  const secret = loadClusterSecret(storageDir, common.clusterSecret);
  const client = new NodeClient({ secret, timeoutMs: 30_000 });
  const tag = randomBytes(4).toString('hex');
  const refKey = (i: number) => `bench-ref-${tag}-${i}`;
  const bytes = jobs.reduce((sum, j) => sum + j.blob.size, 0);
  const routes = [...new Set(jobs.map((j) => `${j.source.id} → ${j.target.id}`))];
  progress(
    `${suite}: reference, plain GET → PUT of the same ${jobs.length} blobs (${(bytes / 1e6).toFixed(0)} MB; ` +
      `${routes.length > 3 ? `${routes.length} node pairs` : routes.join(', ')}), ${concurrency} at a time…`,
  );
  try {
    const started = performance.now();
    await forEachLimited(jobs, concurrency, (job, i) => copyOne(client, job, refKey(i)));
    const rate = rateOf((performance.now() - started) / 1000, jobs.length, bytes);
    progress(
      `${suite}: reference ${rate.objectsPerS.toFixed(0)} objects/s, ${rate.mbPerS.toFixed(0)} MB/s`,
    );
    return rate;
  } catch (err) {
    ctx.failures.push(`${suite}: reference copy: ${(err as Error).message}`);
    return undefined;
  } finally {
    await forEachLimited(jobs, 8, async (job, i) => {
      await client.deleteBlob(job.target, refKey(i)).catch(() => undefined);
    });
    await client.close();
  }
}

async function copyOne(client: NodeClient, job: PlainCopyJob, key: string): Promise<void> {
  const { source, target, blob } = job;
  const res = await client.getBlob(source, blob.key);
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`GET ${source.id}/blobs/${blob.key} → ${res.statusCode}`);
  }
  const report = await client.putBlob(target, key, res.body, {
    chain: [],
    hop: 0,
    contentLength: blob.size,
    expectedSha256: blob.sha256,
  });
  const stored = report.replicas.find((r) => r.node === target.id);
  if (!stored?.ok || stored.sha256 !== blob.sha256) {
    throw new Error(`PUT ${target.id}/blobs/${key}: ${JSON.stringify(stored)}`);
  }
}

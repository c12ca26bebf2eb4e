/**
 * The reference beside the worker: vipsthumbnail, libvips's own tool
 * (Debian's libvips-tools), making the worker's variants of the same photos
 * with the worker's parallelism: the photos dealt to IMAGE_CONCURRENCY lanes,
 * each lane one command over its files, with as many libvips threads as
 * there are cores.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { WEBP_QUALITY } from '../../worker/image-variants.js';
import { findExecutable } from './context.js';
import type { Photo } from './photos.js';
import { exitedChildrenCpuSeconds } from './procfs.js';
import { COPY, THUMB, type BatchRate } from './thumbnail-batch.js';

export type VipsThumbnail = { binary: string; version: string } | { skipped: string };

export function vipsthumbnailBinary(): VipsThumbnail {
  const binary = findExecutable('vipsthumbnail');
  if (!binary)
    return { skipped: 'vipsthumbnail is not installed (e.g. apt-get install libvips-tools)' };
  const run = spawnSync(binary, ['--vips-version'], { encoding: 'utf8', timeout: 10_000 });
  if (run.status !== 0) {
    return {
      skipped: `${binary} --vips-version failed: ${(run.stderr || run.error?.message) ?? ''}`,
    };
  }
  return { binary, version: run.stdout.trim() };
}

/**
 * The photos dealt to `lanes` processes, largest first to the one with the
 * fewest pixels so far, so that they finish together: each lane is one
 * vipsthumbnail command over its files, started once, as the worker is.
 */
export function balance(photos: Photo[], paths: string[], lanes: number): string[][] {
  const out = Array.from({ length: lanes }, () => ({ pixels: 0, files: [] as string[] }));
  const order = photos.map((p, i) => ({ pixels: p.width * p.height, path: paths[i]! }));
  order.sort((a, b) => b.pixels - a.pixels);
  for (const { pixels, path } of order) {
    const lane = out.reduce((min, l) => (l.pixels < min.pixels ? l : min));
    lane.pixels += pixels;
    lane.files.push(path);
  }
  return out.map((l) => l.files).filter((files) => files.length > 0);
}

/** The worker's thumbnail: 256 px box, WebP at its quality, metadata stripped (auto-rotation is vipsthumbnail's default). */
export function thumbArgs(files: string[], out: string): string[] {
  return [
    '-s',
    `${THUMB.maxEdge}x${THUMB.maxEdge}>`,
    '-o',
    `${out}/%s.webp[Q=${WEBP_QUALITY},strip]`,
    ...files,
  ];
}

/** The worker's compressed copy: ≤ 2048 px box, never enlarged (">"), same encoder settings. */
export function copyArgs(files: string[], out: string): string[] {
  return [
    '-s',
    `${COPY.maxEdge}x${COPY.maxEdge}>`,
    '-o',
    `${out}/%s-copy.webp[Q=${WEBP_QUALITY},strip]`,
    ...files,
  ];
}

/** One vipsthumbnail command per lane and step, the lanes at once; CPU from the exited children's rusage. */
export async function vipsBatch(
  binary: string,
  lanes: string[][],
  threads: number,
  steps: (files: string[]) => string[][],
  out: string,
): Promise<BatchRate> {
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const env = { ...process.env, VIPS_CONCURRENCY: String(threads) };
  const images = lanes.reduce((n, files) => n + files.length, 0);
  const cpuBefore = exitedChildrenCpuSeconds();
  const started = performance.now();
  await Promise.all(
    lanes.map(async (files) => {
      for (const args of steps(files)) await runCommand(binary, args, env);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuS = exitedChildrenCpuSeconds() - cpuBefore;
  return { seconds, imagesPerS: images / seconds, cpuMsPerImage: (cpuS * 1000) / images };
}

function runCommand(binary: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${binary} ${args.slice(0, 4).join(' ')} … exited ${signal ?? code}: ${stderr.slice(0, 300)}`,
          ),
        );
    });
  });
}

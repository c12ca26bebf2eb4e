/**
 * V8 settings that keep a service's resident memory small, applied by each
 * main.ts before its first request (docs/benchmarks.md, "Memory", has the
 * figures). They are set at run time rather than on the command line so that
 * every way of starting a service (npm start, npm run gateway, Docker, the
 * test harness) gets them; both are read when used, not at start-up.
 */
import { setFlagsFromString } from 'node:v8';

export const MEMORY_FLAGS = [
  // undici parses HTTP with llhttp compiled to WebAssembly. Once it is hot, V8
  // recompiles its one huge state-machine function with TurboFan, whose
  // register allocator took 20-40 MB for a second or two: a spike in every
  // process, on top of whatever traffic started it. Liftoff's code is enough
  // for a parser that mostly skims headers (CPU per request within the noise).
  '--liftoff-only',
  // The young generation starts at 1 MB per semi-space and doubles up to 16
  // MB under load; both halves get touched, so a busy process kept ~30 MB more
  // resident for good (a gateway under 64 connections of 64 KiB GETs peaked
  // at 141-146 MiB against 108-116). The price is CPU: more scavenges, each
  // copying the state of every request in flight, took that gateway from
  // 0.98 to 1.25 ms of CPU per GET (a 4 MB cap: 1.13 ms and 119 MiB, but the
  // cap, --max-semi-space-size, only works on the command line).
  '--semi-space-growth-factor=1',
];

/**
 * After a full collection V8 lets the old generation grow to up to four
 * times what it kept before collecting again. Under 64 concurrent uploads a
 * gateway's heap swung between 25 and 75 MB (RSS 156-166 MiB); growing by
 * 20 % kept it at 106-108 MiB for the same CPU per request (and at a peak of
 * 119 against 140 MB in the bench's two minutes of mixed traffic).
 *
 * Not for a storage node: streaming large blobs, its 64 KiB socket buffers
 * age into the old generation, and 20 % growth made it collect so often that
 * a 256 MiB PUT cost 3.6-5.0 ms of user CPU per MB against 2.0-2.6 without
 * the flag, at the same peak RSS (88-92 MB, eight at once included).
 */
export const OLD_GENERATION_FLAG = '--heap-growing-percent=20';

/**
 * Applies MEMORY_FLAGS, and OLD_GENERATION_FLAG unless `oldGeneration` is
 * false; call before the process makes or serves its first HTTP request.
 */
export function tuneMemory(o: { oldGeneration?: boolean } = {}): void {
  for (const flag of MEMORY_FLAGS) setFlagsFromString(flag);
  if (o.oldGeneration !== false) setFlagsFromString(OLD_GENERATION_FLAG);
}

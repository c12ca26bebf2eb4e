/**
 * Programs some integration tests need besides Node and the services:
 * Chromium (test/browser.test.ts, test/openapi.test.ts), nginx
 * (test/nginx.test.ts, test/start-lb.test.ts), strace (tests that watch or
 * hold a process's syscalls) and the S3 command-line clients aws, rclone and
 * s3cmd (test/s3-clients.test.ts). A developer's machine without one skips those
 * tests and says why. CI must not: `.ci/run` sets `TROVE_TEST_REQUIRE`,
 * and a tool it names that cannot be found is a failing test, so a broken
 * install can never end as a green run with the browser or the balancer
 * quietly untested.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { it } from 'vitest';

const TOOLS = ['chromium', 'nginx', 'strace', 'aws', 'rclone', 's3cmd'] as const;
export type Tool = (typeof TOOLS)[number];

/** The tools `TROVE_TEST_REQUIRE` (comma-separated) names; a name that is no tool stops the run. */
export function requiredTools(env: NodeJS.ProcessEnv = process.env): Set<Tool> {
  const names = (env.TROVE_TEST_REQUIRE ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const unknown = names.filter((n) => !(TOOLS as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new Error(
      `TROVE_TEST_REQUIRE names ${unknown.join(', ')}: the tools tests can require are ${TOOLS.join(', ')}`,
    );
  return new Set(names as Tool[]);
}

function executable(file: string | undefined): file is string {
  if (!file) return false;
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Flags of a headless Chromium under test: no sandbox (root in CI), and nothing fetched from elsewhere. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** `name` found on PATH, or undefined. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return (env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((d) => join(d, name))
    .find(executable);
}

/** `$CHROMIUM_PATH` when set (and only it), else `chromium` on PATH, else Debian's /usr/bin/chromium. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CHROMIUM_PATH) return executable(env.CHROMIUM_PATH) ? env.CHROMIUM_PATH : undefined;
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  return [...dirs.map((d) => join(d, 'chromium')), '/usr/bin/chromium'].find(executable);
}

/**
 * Call at the top level of a test file with what was found of `tool`
 * (undefined: missing). Returns true when the file's tests that need it must
 * be skipped. A missing tool that TROVE_TEST_REQUIRE names registers one
 * test that fails with `howToGet`; otherwise the skip is announced on stderr.
 */
export function skipWithout(tool: Tool, found: string | undefined, howToGet: string): boolean {
  const required = requiredTools(); // read even when found, so a misspelt name fails at once
  if (found) return false;
  if (required.has(tool)) {
    it(`finds ${tool}, which TROVE_TEST_REQUIRE requires`, () => {
      throw new Error(
        `${tool} was not found and TROVE_TEST_REQUIRE requires it, so its tests may not be skipped: ${howToGet}`,
      );
    });
  } else {
    console.warn(
      `tests that need ${tool} are skipped: it was not found (${howToGet}); TROVE_TEST_REQUIRE=${tool} turns this skip into a failure`,
    );
  }
  return true;
}

/**
 * The README's quick start, run as a reader would paste it, against a fresh
 * cluster: if the API or the defaults change, the first commands a newcomer
 * meets must change with them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startCluster, type Cluster } from './harness.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

/** The first sh block after the quick-start marker. */
function quickStart(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const marker = readme.indexOf('<!-- quick-start:');
  expect(marker).toBeGreaterThan(0);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(marker));
  return block![1]!;
}

describe('README quick start', () => {
  it('uploads, prints the share link and downloads once, as pasted', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'trove-readme-'));
    try {
      const script = quickStart()
        .replaceAll('http://localhost:8080', cluster.gatewayUrl)
        .replaceAll('/tmp/', `${tmp}/`);
      const out = execFileSync('bash', ['-eo', 'pipefail', '-c', script], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      expect(out).toMatch(new RegExp(`^share: ${cluster.gatewayUrl}/s/[A-Za-z0-9_-]{22}$`, 'm'));
      expect(out).toMatch(
        new RegExp(`^file:  ${cluster.gatewayUrl}/download/[A-Za-z0-9_-]{22}$`, 'm'),
      );
      expect(out).toMatch(/^x-downloads-left: 2\r?$/im);
      expect(out).toMatch(/^same bytes$/m);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

/** What the S3 tests share: an access key made through the admin API, the S3 error a request fails with, aws-cli as a user runs it. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { expect } from 'vitest';
import type { Cluster } from './harness.js';

export interface AccessKey {
  id: string;
  secret: string;
}

/** A new access key (POST /admin/s3/keys). */
export async function createAccessKey(
  cluster: Pick<Cluster, 'gatewayUrl'>,
  adminToken: string,
): Promise<AccessKey> {
  const res = await fetch(`${cluster.gatewayUrl}/admin/s3/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}` },
  });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { access_key_id: string; secret_access_key: string };
  return { id: body.access_key_id, secret: body.secret_access_key };
}

/** The S3 error a request fails with (its code and HTTP status). */
export async function s3Error(
  request: Promise<unknown>,
): Promise<{ name: string; status: number }> {
  try {
    await request;
  } catch (err) {
    expect(err).toBeInstanceOf(S3ServiceException);
    const e = err as S3ServiceException;
    return { name: e.name, status: e.$metadata.httpStatusCode ?? 0 };
  }
  throw new Error('expected the request to fail');
}

/**
 * Runs aws-cli against `endpoint` as `key`, with a HOME of its own set up as
 * docs/s3.md says (SigV4 presigned URLs); its stdout and stderr (where
 * --debug writes). A failed run throws with its stderr.
 */
export function awsCli(
  endpoint: string,
  key: AccessKey,
  args: string[],
): { stdout: string; stderr: string } {
  const home = mkdtempSync(join(tmpdir(), 'trove-aws-cli-'));
  mkdirSync(join(home, '.aws'));
  writeFileSync(join(home, '.aws', 'config'), '[default]\ns3 =\n    signature_version = s3v4\n');
  try {
    const run = spawnSync('aws', ['--endpoint-url', endpoint, ...args], {
      encoding: 'utf8',
      env: {
        ...process.env,
        HOME: home,
        AWS_ACCESS_KEY_ID: key.id,
        AWS_SECRET_ACCESS_KEY: key.secret,
        AWS_DEFAULT_REGION: 'us-east-1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
    if (run.status !== 0) throw new Error(`aws ${args.join(' ')}: ${run.stderr.slice(-2000)}`);
    return { stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

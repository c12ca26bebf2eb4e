/**
 * The command-line S3 clients docs/s3.md gives a setup for (aws-cli,
 * rclone, s3cmd), run with exactly that setup against a real cluster: put,
 * list, get and delete a 16 MB photo, past the size at which each tool
 * would switch to a multipart upload (not served yet) without the setting
 * the setup gives. A tool that is not installed is skipped.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, sha256, startCluster, type Cluster } from './harness.js';
import { findOnPath, skipWithout } from './required-tools.js';

const ADMIN_TOKEN = 's3-clients-test-admin-token';

let cluster: Cluster;
let endpoint: string;
let host: string;
let key: { id: string; secret: string };
let tmp: string;
let photoPath: string;
let photo: Buffer;

beforeAll(async () => {
  const s3Port = await freePort();
  host = `127.0.0.1:${s3Port}`;
  endpoint = `http://${host}`;
  cluster = await startCluster({ env: { ADMIN_TOKEN, S3_PORT: String(s3Port) } });
  const res = await fetch(`${cluster.gatewayUrl}/admin/s3/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const body = (await res.json()) as { access_key_id: string; secret_access_key: string };
  key = { id: body.access_key_id, secret: body.secret_access_key };
  tmp = mkdtempSync(join(tmpdir(), 'trove-s3-clients-'));
  // JPEG magic, then noise: an image to the type sniffer, 16 MB.
  photo = randomBytes(16 * 1024 * 1024);
  photo.set([0xff, 0xd8, 0xff, 0xe0], 0);
  photoPath = join(tmp, 'photo.jpg');
  writeFileSync(photoPath, photo);
});

afterAll(async () => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  await cluster?.stop();
});

/** Each client's tests are skipped without it, unless TROVE_TEST_REQUIRE names it (CI does). */
const missing = {
  aws: skipWithout('aws', findOnPath('aws'), 'apt-get install -y awscli, or pip install awscli'),
  rclone: skipWithout('rclone', findOnPath('rclone'), 'apt-get install -y rclone'),
  s3cmd: skipWithout('s3cmd', findOnPath('s3cmd'), 'apt-get install -y s3cmd'),
};

function run(tool: string, args: string[], env: Record<string, string> = {}): string {
  const base: NodeJS.ProcessEnv = { ...process.env, HOME: tmp };
  // rclone 1.60 fails on any AWS_CA_BUNDLE ("unsupported transport"); an http endpoint needs none.
  if (tool === 'rclone') delete base.AWS_CA_BUNDLE;
  return execFileSync(tool, args, {
    encoding: 'utf8',
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe.skipIf(missing.aws)('aws-cli', () => {
  it('makes a bucket, copies a photo in and out, lists and removes it', () => {
    const env = {
      AWS_ACCESS_KEY_ID: key.id,
      AWS_SECRET_ACCESS_KEY: key.secret,
      AWS_DEFAULT_REGION: 'us-east-1',
    };
    // Single PUTs up to 1 GB (MAX_UPLOAD_BYTES), and SigV4 presigned URLs, as docs/s3.md sets it up.
    mkdirSync(join(tmp, '.aws'), { recursive: true });
    writeFileSync(
      join(tmp, '.aws', 'config'),
      '[default]\ns3 =\n    multipart_threshold = 1GB\n    signature_version = s3v4\n',
    );
    const aws = (...args: string[]) => run('aws', ['--endpoint-url', endpoint, ...args], env);
    aws('s3', 'mb', 's3://aws-tools');
    aws('s3', 'cp', photoPath, 's3://aws-tools/holiday/photo.jpg');
    expect(aws('s3', 'ls', 's3://aws-tools/holiday/')).toMatch(/ photo\.jpg$/m);
    const out = join(tmp, 'aws.jpg');
    aws('s3', 'cp', 's3://aws-tools/holiday/photo.jpg', out);
    expect(sha256(readFileSync(out))).toBe(sha256(photo));
    aws('s3', 'rm', 's3://aws-tools/holiday/photo.jpg');
    expect(aws('s3', 'ls', 's3://aws-tools/', '--recursive')).toBe('');
    aws('s3', 'rb', 's3://aws-tools');
  });
});

describe.skipIf(missing.rclone)('rclone', () => {
  it('makes a bucket, copies a photo in and out, lists and removes it', () => {
    const config = join(tmp, 'rclone.conf');
    writeFileSync(
      config,
      [
        '[trove]',
        'type = s3',
        'provider = Other',
        `access_key_id = ${key.id}`,
        `secret_access_key = ${key.secret}`,
        `endpoint = ${endpoint}`,
        'region = us-east-1',
        'upload_cutoff = 1G',
        '',
      ].join('\n'),
    );
    const rclone = (...args: string[]) => run('rclone', ['--config', config, ...args]);
    rclone('mkdir', 'trove:rclone-tools');
    rclone('copyto', photoPath, 'trove:rclone-tools/holiday/photo.jpg');
    expect(rclone('ls', 'trove:rclone-tools')).toMatch(
      new RegExp(`^\\s*${photo.length} holiday/photo\\.jpg$`, 'm'),
    );
    const out = join(tmp, 'rclone.jpg');
    rclone('copyto', 'trove:rclone-tools/holiday/photo.jpg', out);
    expect(sha256(readFileSync(out))).toBe(sha256(photo));
    rclone('deletefile', 'trove:rclone-tools/holiday/photo.jpg');
    expect(rclone('ls', 'trove:rclone-tools')).toBe('');
    rclone('rmdir', 'trove:rclone-tools');
  });
});

describe.skipIf(missing.s3cmd)('s3cmd', () => {
  it('makes a bucket, puts a photo, gets it back, lists and removes it', () => {
    const config = join(tmp, 's3cmd.cfg');
    writeFileSync(
      config,
      [
        '[default]',
        `access_key = ${key.id}`,
        `secret_key = ${key.secret}`,
        `host_base = ${host}`,
        `host_bucket = ${host}`,
        'bucket_location = us-east-1',
        'use_https = False',
        'enable_multipart = False',
        '',
      ].join('\n'),
    );
    const s3cmd = (...args: string[]) => run('s3cmd', ['-c', config, ...args]);
    s3cmd('mb', 's3://s3cmd-tools');
    s3cmd('put', photoPath, 's3://s3cmd-tools/holiday/photo.jpg');
    expect(s3cmd('ls', 's3://s3cmd-tools/holiday/')).toMatch(
      /s3:\/\/s3cmd-tools\/holiday\/photo\.jpg$/m,
    );
    const out = join(tmp, 's3cmd.jpg');
    s3cmd('get', 's3://s3cmd-tools/holiday/photo.jpg', out);
    expect(sha256(readFileSync(out))).toBe(sha256(photo));
    s3cmd('del', 's3://s3cmd-tools/holiday/photo.jpg');
    expect(s3cmd('ls', 's3://s3cmd-tools/')).toBe('');
    s3cmd('rb', 's3://s3cmd-tools');
  });
});

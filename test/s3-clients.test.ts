/**
 * The command-line S3 clients docs/s3.md gives a setup for (aws-cli,
 * rclone, s3cmd), run with exactly that setup against a real cluster: put,
 * list, get and delete a 100 MB photo, which each tool sends as a multipart
 * upload of 8 MB parts (its object's ETag ends in `-13`). A tool that is not
 * installed is skipped.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, hashBody, startCluster, type Cluster } from './harness.js';
import { findOnPath, skipWithout } from './required-tools.js';

const ADMIN_TOKEN = 's3-clients-test-admin-token';

let cluster: Cluster;
let endpoint: string;
let host: string;
let key: { id: string; secret: string };
let tmp: string;
let photoPath: string;
let photoSha256: string;
let s3: S3Client;

const MiB = 1024 * 1024;
const PHOTO_BYTES = 100 * MiB;
/** 100 MiB in parts of 8 MiB, as each tool is set to send it. */
const PARTS = 13;
/** Each tool moves 100 MB up and down: time for a busy two-core machine. */
const TIMEOUT = 120_000;

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
  s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
  });
  tmp = mkdtempSync(join(tmpdir(), 'trove-s3-clients-'));
  photoPath = join(tmp, 'photo.jpg');
  photoSha256 = writePhoto(photoPath, PHOTO_BYTES);
});

/** JPEG magic, then noise (an image to the type sniffer), written a MiB at a time; its sha256. */
function writePhoto(path: string, size: number): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < size; at += MiB) {
      const chunk = randomBytes(Math.min(MiB, size - at));
      if (at === 0) chunk.set([0xff, 0xd8, 0xff, 0xe0], 0);
      hash.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** The object's ETag must be a multipart one: the tool did send it in parts. */
async function expectMultipart(Bucket: string, Key: string): Promise<void> {
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
  expect(head.ContentLength).toBe(PHOTO_BYTES);
  expect(head.ETag).toMatch(new RegExp(`^"[0-9a-f]{32}-${PARTS}"$`));
}

const sha256Of = async (path: string) => (await hashBody(createReadStream(path))).sha256;

afterAll(async () => {
  s3?.destroy();
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
  it(
    'makes a bucket, copies a photo in and out (multipart), lists and removes it',
    { timeout: TIMEOUT },
    async () => {
      const env = {
        AWS_ACCESS_KEY_ID: key.id,
        AWS_SECRET_ACCESS_KEY: key.secret,
        AWS_DEFAULT_REGION: 'us-east-1',
      };
      // aws-cli's defaults (multipart past 8 MB, in parts of 8 MB), and SigV4 presigned URLs, as docs/s3.md sets it up.
      mkdirSync(join(tmp, '.aws'), { recursive: true });
      writeFileSync(join(tmp, '.aws', 'config'), '[default]\ns3 =\n    signature_version = s3v4\n');
      const aws = (...args: string[]) => run('aws', ['--endpoint-url', endpoint, ...args], env);
      aws('s3', 'mb', 's3://aws-tools');
      aws('s3', 'cp', photoPath, 's3://aws-tools/holiday/photo.jpg');
      expect(aws('s3', 'ls', 's3://aws-tools/holiday/')).toMatch(/ photo\.jpg$/m);
      await expectMultipart('aws-tools', 'holiday/photo.jpg');
      const out = join(tmp, 'aws.jpg');
      aws('s3', 'cp', 's3://aws-tools/holiday/photo.jpg', out);
      expect(await sha256Of(out)).toBe(photoSha256);
      aws('s3', 'rm', 's3://aws-tools/holiday/photo.jpg');
      expect(aws('s3', 'ls', 's3://aws-tools/', '--recursive')).toBe('');
      aws('s3', 'rb', 's3://aws-tools');
    },
  );
});

describe.skipIf(missing.rclone)('rclone', () => {
  it(
    'makes a bucket, copies a photo in and out (multipart), lists and removes it',
    { timeout: TIMEOUT },
    async () => {
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
          'upload_cutoff = 16M',
          'chunk_size = 8M',
          '',
        ].join('\n'),
      );
      const rclone = (...args: string[]) => run('rclone', ['--config', config, ...args]);
      rclone('mkdir', 'trove:rclone-tools');
      rclone('copyto', photoPath, 'trove:rclone-tools/holiday/photo.jpg');
      expect(rclone('ls', 'trove:rclone-tools')).toMatch(
        new RegExp(`^\\s*${PHOTO_BYTES} holiday/photo\\.jpg$`, 'm'),
      );
      await expectMultipart('rclone-tools', 'holiday/photo.jpg');
      const out = join(tmp, 'rclone.jpg');
      rclone('copyto', 'trove:rclone-tools/holiday/photo.jpg', out);
      expect(await sha256Of(out)).toBe(photoSha256);
      rclone('deletefile', 'trove:rclone-tools/holiday/photo.jpg');
      expect(rclone('ls', 'trove:rclone-tools')).toBe('');
      rclone('rmdir', 'trove:rclone-tools');
    },
  );
});

describe.skipIf(missing.s3cmd)('s3cmd', () => {
  it(
    'makes a bucket, puts a photo (multipart), gets it back, lists and removes it',
    { timeout: TIMEOUT },
    async () => {
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
          'multipart_chunk_size_mb = 8',
          '',
        ].join('\n'),
      );
      const s3cmd = (...args: string[]) => run('s3cmd', ['-c', config, ...args]);
      s3cmd('mb', 's3://s3cmd-tools');
      s3cmd('put', photoPath, 's3://s3cmd-tools/holiday/photo.jpg');
      expect(s3cmd('ls', 's3://s3cmd-tools/holiday/')).toMatch(
        /s3:\/\/s3cmd-tools\/holiday\/photo\.jpg$/m,
      );
      await expectMultipart('s3cmd-tools', 'holiday/photo.jpg');
      const out = join(tmp, 's3cmd.jpg');
      s3cmd('get', 's3://s3cmd-tools/holiday/photo.jpg', out);
      expect(await sha256Of(out)).toBe(photoSha256);
      s3cmd('del', 's3://s3cmd-tools/holiday/photo.jpg');
      expect(s3cmd('ls', 's3://s3cmd-tools/')).toBe('');
      s3cmd('rb', 's3://s3cmd-tools');
    },
  );
});

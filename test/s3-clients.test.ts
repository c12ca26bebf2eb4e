/**
 * The command-line S3 clients docs/s3.md gives a setup for (aws-cli,
 * rclone, s3cmd), run with exactly that setup against a real cluster: put,
 * list, get and delete a 16 MB photo, past the size at which each tool
 * would switch to a multipart upload (not served yet) without the setting
 * the setup gives. Then each tool's `sync` of a small tree, twice: the second
 * run must transfer nothing (what the tool compares — size, ETag,
 * Last-Modified, rclone's x-amz-meta-mtime — must come back as it was sent),
 * and after a local change exactly that change. A tool that is not installed
 * is skipped.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, freePort, sha256, startCluster, type Cluster } from './harness.js';
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

function toolEnv(tool: string, env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env, HOME: tmp };
  // rclone 1.60 fails on any AWS_CA_BUNDLE ("unsupported transport"); an http endpoint needs none.
  if (tool === 'rclone') delete base.AWS_CA_BUNDLE;
  return { ...base, ...env };
}

/** stdout and stderr together (rclone logs its transfers on stderr); a failed run throws with both. */
function runAll(tool: string, args: string[], env: Record<string, string> = {}): string {
  const res = spawnSync(tool, args, { encoding: 'utf8', env: toolEnv(tool, env) });
  const out = `${res.stdout}${res.stderr}`;
  if (res.status !== 0) throw new Error(`${tool} ${args.join(' ')} exited ${res.status}:\n${out}`);
  return out;
}

const awsEnv = () => ({
  AWS_ACCESS_KEY_ID: key.id,
  AWS_SECRET_ACCESS_KEY: key.secret,
  AWS_DEFAULT_REGION: 'us-east-1',
});

/** aws-cli as docs/s3.md sets it up: single PUTs up to 1 GB (MAX_UPLOAD_BYTES). */
function aws(...args: string[]): string {
  mkdirSync(join(tmp, '.aws'), { recursive: true });
  writeFileSync(join(tmp, '.aws', 'config'), '[default]\ns3 =\n    multipart_threshold = 1GB\n');
  return runAll('aws', ['--endpoint-url', endpoint, ...args], awsEnv());
}

/** rclone with docs/s3.md's remote `trove`. */
function rclone(...args: string[]): string {
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
  return runAll('rclone', ['--config', config, ...args]);
}

/** s3cmd with docs/s3.md's ~/.s3cfg. */
function s3cmd(...args: string[]): string {
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
  return runAll('s3cmd', ['-c', config, ...args]);
}

/** A real PNG's chunks up to IEND (the sniffer reads past the signature), or a JPEG's magic. */
const HEADS = { jpeg: Buffer.from([0xff, 0xd8, 0xff, 0xe0]), png: fixture('alpha.png') };

/** An image to the type sniffer (its head), then noise up to `size` bytes. */
function image(kind: 'jpeg' | 'png', size: number): Buffer {
  const bytes = randomBytes(size);
  bytes.set(HEADS[kind], 0);
  return bytes;
}

/** Six photos, from 3 KB to 1 MB: a name with spaces, a UTF-8 name, a subdirectory. */
const TREE: Array<[string, 'jpeg' | 'png', number]> = [
  ['a.jpg', 'jpeg', 3 * 1024],
  ['b.png', 'png', 40 * 1024],
  ['holiday at sea.jpg', 'jpeg', 200 * 1024],
  ['été 東京 ü.png', 'png', 70 * 1024],
  ['2024/march/c.jpg', 'jpeg', 1024 * 1024],
  ['2024/d.png', 'png', 9 * 1024],
];

function makeTree(name: string): string {
  const dir = join(tmp, name);
  for (const [path, kind, size] of TREE) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), image(kind, size));
  }
  return dir;
}

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

/** Relative path → MD5 of every file under `dir`. */
function localTree(dir: string): Record<string, string> {
  const tree: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const path = join(dir, entry);
    if (statSync(path).isFile()) tree[relative(dir, path)] = md5(readFileSync(path));
  }
  return tree;
}

/** Key → ETag (the MD5 of a single-PUT object) of every object in the bucket, read with the SDK. */
async function remoteTree(bucket: string): Promise<Record<string, string>> {
  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
  });
  const tree: Record<string, string> = {};
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) tree[o.Key!] = o.ETag!.replaceAll('"', '');
    token = page.NextContinuationToken;
  } while (token);
  s3.destroy();
  return tree;
}

/**
 * Changes the tree after a first sync: one file rewritten (a new size, so
 * every tool sees it), one deleted. Returns the two relative paths.
 */
function changeTree(dir: string): { changed: string; deleted: string } {
  const changed = 'holiday at sea.jpg';
  const deleted = '2024/d.png';
  writeFileSync(join(dir, changed), image('jpeg', 210 * 1024));
  unlinkSync(join(dir, deleted));
  return { changed, deleted };
}

/**
 * One tool's sync, three runs: the whole tree; the same again, which must
 * send and delete nothing; after changeTree, exactly the changed file sent
 * and the deleted one removed. `transfers` picks the tool's lines that name
 * an upload, `deletions` those that name a removal.
 */
async function checkSync(
  bucket: string,
  sync: (dir: string) => string,
  lines: { transfers: RegExp; deletions: RegExp },
): Promise<void> {
  const dir = makeTree(bucket);
  const count = (out: string, re: RegExp) => out.split('\n').filter((l) => re.test(l));

  const first = sync(dir);
  expect(count(first, lines.transfers)).toHaveLength(TREE.length);
  expect(await remoteTree(bucket)).toEqual(localTree(dir));

  const second = sync(dir);
  expect(count(second, lines.transfers), second).toEqual([]);
  expect(count(second, lines.deletions), second).toEqual([]);

  const { changed, deleted } = changeTree(dir);
  const third = sync(dir);
  const sent = count(third, lines.transfers);
  expect(sent, third).toHaveLength(1);
  expect(sent[0]).toContain(changed);
  const removed = count(third, lines.deletions);
  expect(removed, third).toHaveLength(1);
  expect(removed[0]).toContain(deleted);
  expect(await remoteTree(bucket)).toEqual(localTree(dir));
}

describe.skipIf(missing.aws)('aws-cli', () => {
  it('makes a bucket, copies a photo in and out, lists and removes it', () => {
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

  it('syncs a tree, then nothing when nothing changed, then only the change', async () => {
    aws('s3', 'mb', 's3://aws-sync');
    // aws-cli prints one `upload: <file> to s3://…` or `delete: s3://…` line per object it acts on.
    await checkSync(
      'aws-sync',
      (dir) => aws('s3', 'sync', '--no-progress', '--delete', dir, 's3://aws-sync'),
      { transfers: /^upload: /, deletions: /^delete: / },
    );
  });
});

describe.skipIf(missing.rclone)('rclone', () => {
  it('makes a bucket, copies a photo in and out, lists and removes it', () => {
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

  it('syncs a tree, then nothing when nothing changed, then only the change', async () => {
    rclone('mkdir', 'trove:rclone-sync');
    // -v logs `<file>: Copied (…)` per upload, `<file>: Deleted` per removal, and any
    // `Updated modification time` (a copy onto itself, which is work too) on stderr.
    await checkSync('rclone-sync', (dir) => rclone('sync', '-v', dir, 'trove:rclone-sync'), {
      transfers: /: (Copied \(|Updated modification time)/,
      deletions: /: Deleted$/,
    });
  });
});

describe.skipIf(missing.s3cmd)('s3cmd', () => {
  it('makes a bucket, puts a photo, gets it back, lists and removes it', () => {
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

  it('syncs a tree, then nothing when nothing changed, then only the change', async () => {
    s3cmd('mb', 's3://s3cmd-sync');
    // s3cmd prints `upload: '<file>' -> 's3://…'` and `delete: 's3://…'` per object.
    await checkSync(
      's3cmd-sync',
      (dir) => s3cmd('sync', '--delete-removed', '--no-progress', `${dir}/`, 's3://s3cmd-sync/'),
      { transfers: /^upload: /, deletions: /^delete: / },
    );
  });
});

/**
 * The command-line S3 clients docs/s3.md gives a setup for (aws-cli,
 * rclone, s3cmd), run with exactly that setup against a real cluster: put,
 * list, get and delete a 100 MB photo, which each tool sends as a multipart
 * upload of 8 MB parts (its object's ETag ends in `-13`); a UTF-8 name with
 * spaces, listings by prefix and delimiter, a Range read, a copy, deletes of
 * one key and of many, and a presigned GET that counts as a download. Then
 * each tool's `sync` of a small tree, twice: the second run must transfer
 * nothing (what the tool compares — size, ETag, Last-Modified, rclone's
 * x-amz-meta-mtime — must come back as it was sent), and after a local
 * change exactly that change. A tool that is not installed is skipped.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, freePort, hashBody, sha256, startCluster, type Cluster } from './harness.js';
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
  cluster = await startCluster({
    // Every CompleteMultipartUpload kept alive (a 200 at once, spaces, then the document), as a
    // large object's would be: each client must read its answer that way.
    env: { ADMIN_TOKEN, S3_PORT: String(s3Port), S3_COMPLETE_KEEPALIVE_MS: '1' },
  });
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

/**
 * aws-cli as docs/s3.md sets it up: its defaults (multipart past 8 MB, in
 * parts of 8 MB), and SigV4 presigned URLs.
 */
function aws(...args: string[]): string {
  mkdirSync(join(tmp, '.aws'), { recursive: true });
  writeFileSync(join(tmp, '.aws', 'config'), '[default]\ns3 =\n    signature_version = s3v4\n');
  return runAll('aws', ['--endpoint-url', endpoint, ...args], awsEnv());
}

/** rclone with docs/s3.md's remote `trove`, set to multipart past 16 MB in parts of 8 MB. */
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
      'upload_cutoff = 16M',
      'chunk_size = 8M',
      '',
    ].join('\n'),
  );
  return runAll('rclone', ['--config', config, ...args]);
}

/** s3cmd with docs/s3.md's ~/.s3cfg, set to parts of 8 MB. */
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
      'multipart_chunk_size_mb = 8',
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
  const tree: Record<string, string> = {};
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) tree[o.Key!] = o.ETag!.replaceAll('"', '');
    token = page.NextContinuationToken;
  } while (token);
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

/** A key with spaces and UTF-8, under a "folder" with a space. */
const UTF8_KEY = 'Ferien 2026/été à Nice.jpg';

/** A 300 KB photo on disk, for the tests that are not about size. */
function smallPhoto(name: string): { path: string; bytes: Buffer } {
  const bytes = image('jpeg', 300 * 1024);
  const path = join(tmp, `${name}-small.jpg`);
  writeFileSync(path, bytes);
  return { path, bytes };
}

/** rclone's stdout as bytes (`rclone cat`). */
function rcloneBytes(...args: string[]): Buffer {
  const config = join(tmp, 'rclone.conf');
  const res = spawnSync('rclone', ['--config', config, ...args], { env: toolEnv('rclone', {}) });
  if (res.status !== 0) throw new Error(`rclone ${args.join(' ')}: ${res.stderr.toString()}`);
  return res.stdout;
}

/**
 * A presigned GET is a use of the share link: of an object with
 * max-downloads 2, two fetches get its bytes, the third S3's 403 AccessDenied.
 */
async function expectCountedLink(url: string, bytes: Buffer): Promise<void> {
  expect(url).toMatch(/X-Amz-Signature=/);
  for (let i = 0; i < 2; i++) {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(bytes));
  }
  const refused = await fetch(url);
  expect(refused.status).toBe(403);
  expect(await refused.text()).toMatch(/<Code>AccessDenied<\/Code>/);
}

describe.skipIf(missing.aws)('aws-cli', () => {
  it(
    'makes a bucket, copies a photo in and out (multipart), lists and removes it',
    { timeout: TIMEOUT },
    async () => {
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

  it('keeps a UTF-8 name with spaces, lists by delimiter, reads a range, copies, deletes one and many', () => {
    const { path, bytes } = smallPhoto('aws');
    aws('s3', 'mb', 's3://aws-ops');
    aws('s3', 'cp', path, `s3://aws-ops/${UTF8_KEY}`);
    aws('s3', 'cp', path, 's3://aws-ops/top.jpg');
    // Without --recursive, `ls` lists with delimiter `/`: the folder is a common prefix.
    const root = aws('s3', 'ls', 's3://aws-ops/');
    expect(root).toMatch(/PRE Ferien 2026\/$/m);
    expect(root).toMatch(/ top\.jpg$/m);
    expect(aws('s3', 'ls', 's3://aws-ops/Ferien 2026/')).toMatch(/ été à Nice\.jpg$/m);

    const part = join(tmp, 'aws-range.bin');
    aws(
      's3api',
      'get-object',
      '--bucket',
      'aws-ops',
      '--key',
      UTF8_KEY,
      '--range',
      'bytes=1000-2999',
      part,
    );
    expect(readFileSync(part).equals(bytes.subarray(1000, 3000))).toBe(true);

    aws('s3', 'cp', `s3://aws-ops/${UTF8_KEY}`, 's3://aws-ops/copies/nice.jpg');
    const copy = join(tmp, 'aws-copy.jpg');
    aws('s3', 'cp', 's3://aws-ops/copies/nice.jpg', copy);
    expect(sha256(readFileSync(copy))).toBe(sha256(bytes));

    aws('s3', 'rm', 's3://aws-ops/top.jpg');
    const many = { Objects: [{ Key: UTF8_KEY }, { Key: 'copies/nice.jpg' }], Quiet: true };
    aws('s3api', 'delete-objects', '--bucket', 'aws-ops', '--delete', JSON.stringify(many));
    expect(aws('s3', 'ls', 's3://aws-ops/', '--recursive')).toBe('');
    aws('s3', 'rb', 's3://aws-ops');
  });

  it('presigns a GET that counts: with max-downloads 2, 200, 200, then 403', async () => {
    const { path, bytes } = smallPhoto('aws-shared');
    aws('s3', 'mb', 's3://aws-shared');
    aws('s3', 'cp', '--metadata', 'max-downloads=2', path, 's3://aws-shared/photo.jpg');
    const url = aws('s3', 'presign', 's3://aws-shared/photo.jpg', '--expires-in', '600').trim();
    await expectCountedLink(url, bytes);
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
  it(
    'makes a bucket, copies a photo in and out (multipart), lists and removes it',
    { timeout: TIMEOUT },
    async () => {
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

  it('keeps a UTF-8 name with spaces, lists by delimiter, reads a range, copies, deletes one and many', () => {
    const { path, bytes } = smallPhoto('rclone');
    rclone('mkdir', 'trove:rclone-ops');
    rclone('copyto', path, `trove:rclone-ops/${UTF8_KEY}`);
    rclone('copyto', path, 'trove:rclone-ops/top.jpg');
    // lsf without -R lists one level: with delimiter `/`.
    expect(rclone('lsf', 'trove:rclone-ops').split('\n').filter(Boolean).sort()).toEqual([
      'Ferien 2026/',
      'top.jpg',
    ]);
    expect(rclone('lsf', 'trove:rclone-ops/Ferien 2026').trim()).toBe('été à Nice.jpg');

    const part = rcloneBytes(
      'cat',
      '--offset',
      '1000',
      '--count',
      '2000',
      `trove:rclone-ops/${UTF8_KEY}`,
    );
    expect(part.equals(bytes.subarray(1000, 3000))).toBe(true);

    // A copy within the remote is a server-side CopyObject.
    rclone('copyto', `trove:rclone-ops/${UTF8_KEY}`, 'trove:rclone-ops/copies/nice.jpg');
    expect(sha256(rcloneBytes('cat', 'trove:rclone-ops/copies/nice.jpg'))).toBe(sha256(bytes));

    rclone('deletefile', 'trove:rclone-ops/top.jpg');
    rclone('delete', 'trove:rclone-ops');
    expect(rclone('lsf', '-R', 'trove:rclone-ops')).toBe('');
    rclone('rmdir', 'trove:rclone-ops');
  });

  it('makes a link (a presigned GET) that counts: with max-downloads 2, 200, 200, then 403', async () => {
    const { path, bytes } = smallPhoto('rclone-shared');
    rclone('mkdir', 'trove:rclone-shared');
    rclone(
      'copyto',
      '--header-upload',
      'x-amz-meta-max-downloads: 2',
      path,
      'trove:rclone-shared/photo.jpg',
    );
    const url = rclone('link', '--expire', '1h', 'trove:rclone-shared/photo.jpg').trim();
    await expectCountedLink(url, bytes);
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
  it(
    'makes a bucket, puts a photo (multipart), gets it back, lists and removes it',
    { timeout: TIMEOUT },
    async () => {
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

  it('keeps a UTF-8 name with spaces, lists by delimiter, resumes a get by range, copies, deletes one and many', () => {
    const { path, bytes } = smallPhoto('s3cmd');
    s3cmd('mb', 's3://s3cmd-ops');
    s3cmd('put', path, `s3://s3cmd-ops/${UTF8_KEY}`);
    s3cmd('put', path, 's3://s3cmd-ops/top.jpg');
    // Without --recursive, ls lists with delimiter `/`.
    const root = s3cmd('ls', 's3://s3cmd-ops/');
    expect(root).toMatch(/DIR\s+s3:\/\/s3cmd-ops\/Ferien 2026\/$/m);
    expect(root).toMatch(/s3:\/\/s3cmd-ops\/top\.jpg$/m);
    expect(s3cmd('ls', 's3://s3cmd-ops/Ferien 2026/')).toMatch(/Ferien 2026\/été à Nice\.jpg$/m);

    // `get --continue` asks for the bytes after those already on disk: a Range GET.
    const partial = join(tmp, 's3cmd-partial.jpg');
    writeFileSync(partial, bytes.subarray(0, 1000));
    s3cmd('get', '--continue', `s3://s3cmd-ops/${UTF8_KEY}`, partial);
    expect(sha256(readFileSync(partial))).toBe(sha256(bytes));

    s3cmd('cp', `s3://s3cmd-ops/${UTF8_KEY}`, 's3://s3cmd-ops/copies/nice.jpg');
    const copy = join(tmp, 's3cmd-copy.jpg');
    s3cmd('get', 's3://s3cmd-ops/copies/nice.jpg', copy);
    expect(sha256(readFileSync(copy))).toBe(sha256(bytes));

    s3cmd('del', 's3://s3cmd-ops/top.jpg');
    // A recursive delete sends DeleteObjects (multi-object delete) batches.
    s3cmd('del', '--recursive', '--force', 's3://s3cmd-ops/');
    expect(s3cmd('ls', '--recursive', 's3://s3cmd-ops/')).toBe('');
    s3cmd('rb', 's3://s3cmd-ops');
  });

  it('has its signurl (Signature Version 2) refused, not served uncounted', async () => {
    const { path } = smallPhoto('s3cmd-shared');
    s3cmd('mb', 's3://s3cmd-shared');
    s3cmd('put', path, 's3://s3cmd-shared/photo.jpg');
    const url = s3cmd('signurl', 's3://s3cmd-shared/photo.jpg', '+600').trim();
    const res = await fetch(url);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/<Code>InvalidRequest<\/Code>/);
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

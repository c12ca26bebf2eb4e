/**
 * The shared secret every internal request carries (`Authorization: Bearer …`).
 * Either CLUSTER_SECRET, or a random one generated once into
 * STORAGE_DIR/cluster.secret so that all local processes agree without setup.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export function secretFile(storageDir: string): string {
  return join(storageDir, 'cluster.secret');
}

export function loadClusterSecret(storageDir: string, configured: string | undefined): string {
  if (configured) return configured;
  const file = secretFile(storageDir);
  mkdirSync(storageDir, { recursive: true });
  createOnce(file, randomBytes(32).toString('base64url') + '\n');
  const secret = readFileSync(file, 'utf8').trim();
  if (secret.length < 16)
    throw new Error(`${file} holds no usable secret; delete it to regenerate`);
  return secret;
}

/**
 * Puts `content` at `file` unless it exists, such that no process ever sees
 * the file partly written: the content goes to a temp file of our own, which
 * is then hard-linked into place. link() fails with EEXIST when another
 * process got there first: of several starting at once, exactly one secret wins.
 */
function createOnce(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd); // else a power cut could leave the linked name with no bytes
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
    syncDir(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/** fsyncs the directory holding `file`, so its new name survives a power cut. */
function syncDir(file: string): void {
  const fd = openSync(join(file, '..'), 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Compares an Authorization header with the secret in constant time. */
export function isAuthorized(header: string | undefined, secret: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  return timingSafeEqual(digest(header.slice(7)), digest(secret));
}

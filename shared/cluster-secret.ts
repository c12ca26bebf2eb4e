/**
 * The shared secret every internal request carries (`Authorization: Bearer …`).
 * Either CLUSTER_SECRET, or a random one generated once into
 * STORAGE_DIR/cluster.secret so that all local processes agree without setup.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function secretFile(storageDir: string): string {
  return join(storageDir, 'cluster.secret');
}

export function loadClusterSecret(storageDir: string, configured: string | undefined): string {
  if (configured) return configured;
  const file = secretFile(storageDir);
  mkdirSync(storageDir, { recursive: true });
  try {
    // 'wx': of several processes starting at once, exactly one creates it.
    writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = readFileSync(file, 'utf8').trim();
  if (secret.length < 16)
    throw new Error(`${file} holds no usable secret; delete it to regenerate`);
  return secret;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Compares an Authorization header with the secret in constant time. */
export function isAuthorized(header: string | undefined, secret: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  return timingSafeEqual(digest(header.slice(7)), digest(secret));
}

/**
 * Access-key secrets at rest: AES-256-GCM under a key derived from the
 * cluster secret (HKDF-SHA256, an info string of its own, so no other key
 * of the cluster equals it), a random 12-byte nonce per secret, and the
 * access key id as associated data, so a sealed secret copied onto another
 * key's row does not open. A wrong cluster secret or a changed byte fails
 * the GCM tag check: nothing is ever decrypted wrongly in silence.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { TroveError } from '../../shared/errors.js';

const INFO = 'trove s3 access-key secrets v1';
const VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** A sealed secret that does not open: tampered with, or sealed under another cluster secret. */
export class SealedSecretError extends TroveError {
  constructor(accessKeyId: string, options?: ErrorOptions) {
    super(
      'ACCESS_KEY_UNREADABLE',
      500,
      `the secret of access key ${accessKeyId} cannot be decrypted: was CLUSTER_SECRET changed since it was made?`,
      options,
    );
  }
}

/** The 32-byte key secrets are sealed with, from the cluster secret. */
export function secretBoxKey(clusterSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', clusterSecret, Buffer.alloc(0), INFO, 32));
}

/** `v1.<base64url(nonce | ciphertext | tag)>`. */
export function sealSecret(key: Buffer, accessKeyId: string, secret: string): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(accessKeyId, 'utf8'));
  const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return `${VERSION}.${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url')}`;
}

/** The plain secret; throws SealedSecretError when it does not open. */
export function openSecret(key: Buffer, accessKeyId: string, sealed: string): string {
  const [version, packed] = sealed.split('.');
  const bytes = Buffer.from(packed ?? '', 'base64url');
  if (version !== VERSION || bytes.length < NONCE_BYTES + TAG_BYTES)
    throw new SealedSecretError(accessKeyId);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, NONCE_BYTES));
    decipher.setAAD(Buffer.from(accessKeyId, 'utf8'));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    const body = bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new SealedSecretError(accessKeyId, { cause: err });
  }
}

import { describe, expect, it } from 'vitest';
import { SealedSecretError, openSecret, sealSecret, secretBoxKey } from './secret-box.js';

const ID = 'TRVABCDEFGHIJKLMNOPQ';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

describe('secret box', () => {
  const key = secretBoxKey('cluster-secret-one');

  it('opens what it sealed, and never holds the secret in plain text', () => {
    const sealed = sealSecret(key, ID, SECRET);
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain(SECRET);
    expect(Buffer.from(sealed.slice(3), 'base64url').toString('latin1')).not.toContain('wJalr');
    expect(openSecret(key, ID, sealed)).toBe(SECRET);
  });

  it('uses a fresh nonce each time: the same secret seals differently', () => {
    expect(sealSecret(key, ID, SECRET)).not.toBe(sealSecret(key, ID, SECRET));
  });

  it('refuses a sealed secret with any byte changed', () => {
    const sealed = sealSecret(key, ID, SECRET);
    const bytes = Buffer.from(sealed.slice(3), 'base64url');
    for (const at of [0, 12, 20, bytes.length - 1]) {
      const tampered = Buffer.from(bytes);
      tampered[at]! ^= 1;
      expect(() => openSecret(key, ID, `v1.${tampered.toString('base64url')}`)).toThrow(
        SealedSecretError,
      );
    }
    expect(() => openSecret(key, ID, 'v1.')).toThrow(SealedSecretError);
    expect(() => openSecret(key, ID, `v2.${sealed.slice(3)}`)).toThrow(SealedSecretError);
  });

  it('refuses under another cluster secret, and on another key id', () => {
    const sealed = sealSecret(key, ID, SECRET);
    expect(() => openSecret(secretBoxKey('cluster-secret-two'), ID, sealed)).toThrow(
      /CLUSTER_SECRET/,
    );
    expect(() => openSecret(key, 'TRVOTHERKEY000000000', sealed)).toThrow(SealedSecretError);
  });

  it('derives a key of its own: not the cluster secret, 32 bytes, the same each time', () => {
    expect(secretBoxKey('s')).toHaveLength(32);
    expect(secretBoxKey('s').equals(secretBoxKey('s'))).toBe(true);
    expect(secretBoxKey('s').equals(secretBoxKey('t'))).toBe(false);
  });
});

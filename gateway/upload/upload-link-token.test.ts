import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  newUploadLink,
  signUploadLink,
  uploadLinkKey,
  verifyUploadLink,
  type UploadLink,
} from './upload-link-token.js';

const key = uploadLinkKey('a-cluster-secret-of-some-length');
const now = Date.UTC(2030, 0, 1);
const inAnHour = now / 1000 + 3600;

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** Signs any payload with the right key: what a holder of the cluster secret could make. */
const signed = (payload: unknown) => {
  const body = b64(payload);
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
};

describe('upload link tokens', () => {
  const link = newUploadLink(inAnHour, 2, { max_downloads: 1, ttl: 600 });
  const token = signUploadLink(key, link);

  it('round-trips a link it signed', () => {
    expect(verifyUploadLink(key, token, now)).toEqual(link);
    expect(link.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(newUploadLink(inAnHour, 2, {}).id).not.toBe(link.id);
  });

  it('is accepted by another gateway of the same cluster, not by another cluster', () => {
    expect(verifyUploadLink(uploadLinkKey('a-cluster-secret-of-some-length'), token, now).id).toBe(
      link.id,
    );
    expect(code(() => verifyUploadLink(uploadLinkKey('another-secret-entirely'), token, now))).toBe(
      'UPLOAD_LINK_INVALID',
    );
  });

  it('refuses a changed payload with the old signature', () => {
    const [, signature] = token.split('.');
    const more: UploadLink = { ...link, files: 1000 };
    expect(code(() => verifyUploadLink(key, `${b64(more)}.${signature}`, now))).toBe(
      'UPLOAD_LINK_INVALID',
    );
    const later: UploadLink = { ...link, exp: link.exp + 86400 };
    expect(code(() => verifyUploadLink(key, `${b64(later)}.${signature}`, now))).toBe(
      'UPLOAD_LINK_INVALID',
    );
  });

  it('refuses a changed signature, a flipped character, a truncated one', () => {
    const [body, signature] = token.split('.') as [string, string];
    const flipped = signature[0] === 'A' ? `B${signature.slice(1)}` : `A${signature.slice(1)}`;
    for (const bad of [
      `${body}.${flipped}`,
      `${body}.${signature.slice(0, -2)}`,
      `${body}.`,
      `${body}`,
      `.${signature}`,
      `${signature}.${body}`,
      `${token}.extra`,
      '',
      'not a token at all',
      `${body}.${signature}=`,
    ])
      expect(
        code(() => verifyUploadLink(key, bad, now)),
        bad,
      ).toBe('UPLOAD_LINK_INVALID');
  });

  it('refuses a token signed for another purpose, or with a malformed payload', () => {
    expect(code(() => verifyUploadLink(key, signed({ ...link, purpose: 'download' }), now))).toBe(
      'UPLOAD_LINK_INVALID',
    );
    expect(code(() => verifyUploadLink(key, signed({ ...link, files: -1 }), now))).toBe(
      'UPLOAD_LINK_INVALID',
    );
    expect(code(() => verifyUploadLink(key, signed('just a string'), now))).toBe(
      'UPLOAD_LINK_INVALID',
    );
    const notJson = Buffer.from('{nope').toString('base64url');
    const sig = createHmac('sha256', key).update(notJson).digest('base64url');
    expect(code(() => verifyUploadLink(key, `${notJson}.${sig}`, now))).toBe('UPLOAD_LINK_INVALID');
  });

  it('expires at exp, not a moment later', () => {
    expect(verifyUploadLink(key, token, inAnHour * 1000 - 1).id).toBe(link.id);
    expect(code(() => verifyUploadLink(key, token, inAnHour * 1000))).toBe('UPLOAD_LINK_EXPIRED');
    expect(code(() => verifyUploadLink(key, token, inAnHour * 1000 + 86400_000))).toBe(
      'UPLOAD_LINK_EXPIRED',
    );
  });

  it('checks the signature before the expiry: a forged old link is invalid, not expired', () => {
    const [, signature] = token.split('.');
    const old: UploadLink = { ...link, exp: 1 };
    expect(code(() => verifyUploadLink(key, `${b64(old)}.${signature}`, now))).toBe(
      'UPLOAD_LINK_INVALID',
    );
  });
});

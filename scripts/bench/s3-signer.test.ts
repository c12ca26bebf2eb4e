import { afterEach, describe, expect, it, vi } from 'vitest';
import { verifySigV4 } from '../../gateway/s3/sigv4.js';
import { signedHeaders } from './s3-signer.js';

const creds = {
  endpoint: 'http://127.0.0.1:9000',
  region: 'us-east-1',
  accessKeyId: 'TRVBENCH',
  secretAccessKey: 'bench-secret',
};
const secretOf = async (id: string) =>
  id === creds.accessKeyId ? creds.secretAccessKey : undefined;

/** The request as the gateway would receive it, headers lower-cased. */
function received(method: string, path: string, headers: Record<string, string>) {
  const [rawPath, rawQuery = ''] = path.split('?', 2) as [string, string?];
  return { method, rawPath, rawQuery, headers };
}

describe("the bench's SigV4 signer", () => {
  it('signs what the gateway verifies, extra headers and query included', async () => {
    const path = '/bucket/bench-1.jpg?x-id=PutObject';
    const headers = signedHeaders(creds, 'PUT', path, { 'x-amz-meta-max-downloads': '0' });
    const auth = await verifySigV4(received('PUT', path, headers), secretOf);
    expect(auth).toMatchObject({ accessKeyId: 'TRVBENCH', payloadHash: 'UNSIGNED-PAYLOAD' });
  });

  it('makes a signature the gateway refuses once a signed header changes', async () => {
    const headers = signedHeaders(creds, 'PUT', '/bucket/k', { 'x-amz-meta-max-downloads': '0' });
    const tampered = { ...headers, 'x-amz-meta-max-downloads': '5' };
    await expect(
      verifySigV4(received('PUT', '/bucket/k', tampered), secretOf),
    ).rejects.toMatchObject({ code: 'SignatureDoesNotMatch' });
  });

  describe('within one second', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('signs a request without extra headers once, and the gateway verifies each reuse', async () => {
      vi.useFakeTimers({ now: Date.UTC(2026, 11, 6, 10, 0, 0, 100), toFake: ['Date'] });
      const first = signedHeaders(creds, 'GET', '/bucket/a.jpg');
      vi.setSystemTime(Date.UTC(2026, 11, 6, 10, 0, 0, 900));
      expect(signedHeaders(creds, 'GET', '/bucket/a.jpg')).toBe(first);
      expect(
        await verifySigV4(received('GET', '/bucket/a.jpg', { ...first }), secretOf),
      ).toMatchObject({ accessKeyId: 'TRVBENCH' });
      // Another path, or the next second, is signed anew.
      expect(signedHeaders(creds, 'GET', '/bucket/b.jpg').authorization).not.toBe(
        first.authorization,
      );
      vi.setSystemTime(Date.UTC(2026, 11, 6, 10, 0, 1, 0));
      const next = signedHeaders(creds, 'GET', '/bucket/a.jpg');
      expect(next['x-amz-date']).toBe('20261206T100001Z');
      expect(
        await verifySigV4(received('GET', '/bucket/a.jpg', { ...next }), secretOf),
      ).toBeDefined();
    });

    it('signs every request with extra headers anew', () => {
      vi.useFakeTimers({ now: Date.UTC(2026, 11, 6, 10, 0, 0), toFake: ['Date'] });
      const extra = { 'x-amz-meta-max-downloads': '0' };
      expect(signedHeaders(creds, 'PUT', '/bucket/k', extra)).not.toBe(
        signedHeaders(creds, 'PUT', '/bucket/k', extra),
      );
    });
  });
});

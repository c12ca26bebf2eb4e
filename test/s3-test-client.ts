/** What the S3 tests share: an access key made through the admin API, and the S3 error a request fails with. */
import { S3ServiceException } from '@aws-sdk/client-s3';
import { expect } from 'vitest';
import type { Cluster } from './harness.js';

export interface AccessKey {
  id: string;
  secret: string;
}

/** A new access key (POST /admin/s3/keys). */
export async function createAccessKey(
  cluster: Pick<Cluster, 'gatewayUrl'>,
  adminToken: string,
): Promise<AccessKey> {
  const res = await fetch(`${cluster.gatewayUrl}/admin/s3/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}` },
  });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { access_key_id: string; secret_access_key: string };
  return { id: body.access_key_id, secret: body.secret_access_key };
}

/** The S3 error a request fails with (its code and HTTP status). */
export async function s3Error(
  request: Promise<unknown>,
): Promise<{ name: string; status: number }> {
  try {
    await request;
  } catch (err) {
    expect(err).toBeInstanceOf(S3ServiceException);
    const e = err as S3ServiceException;
    return { name: e.name, status: e.$metadata.httpStatusCode ?? 0 };
  }
  throw new Error('expected the request to fail');
}

/**
 * The S3 port under the native API's rate limits and in its metrics, against
 * a real cluster: PutObject counts as an upload and GetObject as a download
 * in the same Redis budget as PUT /upload and GET /download/:id; a client
 * over it gets S3's 503 SlowDown with a Retry-After; listings are not
 * limited; GET /metrics on the main port counts S3 requests by operation and
 * status, and their bytes.
 *
 * Clients are told apart with TRUST_PROXY and X-Forwarded-For (TEST-NET
 * addresses), as in test/rate-limit.test.ts: loopback is never limited.
 */
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { fixture, freePort, startCluster, type Cluster } from './harness.js';
import { metricValue, parseMetrics } from './metrics-text.js';

const ADMIN_TOKEN = 's3-limits-test-admin-token';
// A 60 s window: bursts of up to max, then one more every 60 s / max (none within a test).
const LIMITS = {
  TRUST_PROXY: 'true',
  RATE_LIMIT_WINDOW_SECONDS: '60',
  RATE_LIMIT_UPLOADS: '3',
  RATE_LIMIT_DOWNLOADS: '4',
};
const BUCKET = 'limited';
const photo = fixture('photo.jpg');

let cluster: Cluster;
let endpoint: string;
let key: { id: string; secret: string };

beforeAll(async () => {
  const s3Port = await freePort();
  endpoint = `http://127.0.0.1:${s3Port}`;
  cluster = await startCluster({ env: { ...LIMITS, ADMIN_TOKEN, S3_PORT: String(s3Port) } });
  const res = await fetch(`${cluster.gatewayUrl}/admin/s3/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const body = (await res.json()) as { access_key_id: string; secret_access_key: string };
  key = { id: body.access_key_id, secret: body.secret_access_key };
  await client().send(new CreateBucketCommand({ Bucket: BUCKET }));
  await client().send(new PutObjectCommand({ Bucket: BUCKET, Key: 'shared.jpg', Body: photo }));
});
afterAll(async () => {
  await cluster?.stop();
});

const showLogsOnFailure = () => onTestFailed(() => console.log(cluster.logTail(30)));

/** A fresh client address per test, so no test spends another's budget. */
let nextClient = 1;
const newClient = () => `203.0.113.${nextClient++}`;

/** An SDK client whose requests come from `address` (X-Forwarded-For), or from loopback. */
function client(address?: string): S3Client {
  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
    // A refusal must be seen as it is, not retried away.
    maxAttempts: 1,
  });
  if (address)
    s3.middlewareStack.add(
      (next) => (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-forwarded-for'] = address;
        return next(args);
      },
      { step: 'build' },
    );
  return s3;
}

/** The S3 error `request` fails with: its code, HTTP status and Retry-After. */
async function refusal(request: Promise<unknown>) {
  const err = await request.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(S3ServiceException);
  const e = err as S3ServiceException & { $response?: { headers: Record<string, string> } };
  return {
    code: e.name,
    status: e.$metadata.httpStatusCode,
    message: e.message,
    retryAfter: Number(e.$response?.headers['retry-after']),
  };
}

const put = (s3: S3Client, k: string) =>
  s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: k, Body: photo }));
const get = (s3: S3Client) =>
  s3
    .send(new GetObjectCommand({ Bucket: BUCKET, Key: 'shared.jpg' }))
    .then((o) => o.Body!.transformToByteArray());

async function scrape() {
  const res = await fetch(`${cluster.gatewayUrl}/metrics`);
  return parseMetrics(await res.text());
}

describe('S3 rate limits', () => {
  it('counts PutObject as an upload: past RATE_LIMIT_UPLOADS, 503 SlowDown with Retry-After', async () => {
    showLogsOnFailure();
    const s3 = client(newClient());
    for (let i = 0; i < 3; i++) await put(s3, `burst/${i}.jpg`);
    const refused = await refusal(put(s3, 'burst/3.jpg'));
    expect(refused).toMatchObject({ code: 'SlowDown', status: 503 });
    expect(refused.message).toContain('RATE_LIMIT_UPLOADS');
    expect(refused.retryAfter).toBeGreaterThanOrEqual(1);
    // Listings have no limit; another client still has its own budget.
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'burst/' }));
    expect(listed.KeyCount).toBe(3);
    await put(client(newClient()), 'burst/other.jpg');
  });

  it('counts GetObject as a download: past RATE_LIMIT_DOWNLOADS, 503 SlowDown', async () => {
    showLogsOnFailure();
    const s3 = client(newClient());
    for (let i = 0; i < 4; i++) expect((await get(s3)).length).toBe(photo.length);
    const refused = await refusal(get(s3));
    expect(refused).toMatchObject({ code: 'SlowDown', status: 503 });
    expect(refused.message).toContain('RATE_LIMIT_DOWNLOADS');
  });

  it('shares one budget with the native API: uploads on either port count together', async () => {
    showLogsOnFailure();
    const address = newClient();
    const s3 = client(address);
    for (let i = 0; i < 3; i++) await put(s3, `shared/${i}.jpg`);
    const native = await fetch(`${cluster.gatewayUrl}/upload/p.jpg`, {
      method: 'PUT',
      headers: { 'x-forwarded-for': address },
      body: photo,
    });
    expect(native.status).toBe(429);
  });

  it('leaves loopback unlimited, as the native API does', async () => {
    const s3 = client();
    for (let i = 0; i < 5; i++) await put(s3, `loopback/${i}.jpg`);
  });
});

describe('S3 metrics', () => {
  it('GET /metrics on the main port counts S3 requests by operation and status, and their bytes', async () => {
    const before = await scrape();
    const s3 = client(newClient());
    for (let i = 0; i < 3; i++) await put(s3, `metrics/${i}.jpg`);
    await refusal(put(s3, 'metrics/3.jpg'));
    await get(s3);
    await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    const count = async (operation: string, status: string) => {
      const labels = { operation, status };
      return (
        metricValue(await scrape(), 'trove_s3_requests_total', labels) -
        metricValue(before, 'trove_s3_requests_total', labels)
      );
    };
    // Counted when each response has gone out: the last may land just after the client has it.
    await expect.poll(() => count('ListObjectsV2', '200')).toBe(1);
    expect(await count('PutObject', '200')).toBe(3);
    expect(await count('PutObject', '503')).toBe(1);
    expect(await count('GetObject', '200')).toBe(1);
    const after = await scrape();
    const bytes = (direction: string) =>
      metricValue(after, 'trove_s3_bytes_total', { direction }) -
      metricValue(before, 'trove_s3_bytes_total', { direction });
    expect(bytes('in')).toBeGreaterThan(3 * photo.length);
    expect(bytes('out')).toBeGreaterThan(photo.length);
    // The files' own bytes are in the native API's counters too.
    expect(metricValue(after, 'trove_upload_bytes_total')).toBeGreaterThanOrEqual(
      metricValue(before, 'trove_upload_bytes_total') + 3 * photo.length,
    );
  });
});

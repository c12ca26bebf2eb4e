/**
 * Per-client rate limits against real gateways sharing one Redis: the limits
 * hold across two gateways, refusals are 429 RATE_LIMITED with a Retry-After
 * that is enough, a client over its misses (guessed ids) is refused even for a
 * real file, RATE_LIMITS=off refuses nothing, and a gateway without Redis
 * fails open.
 *
 * Clients are told apart with TRUST_PROXY and X-Forwarded-For (TEST-NET
 * addresses), as behind ngrok; requests without it come from loopback, which
 * is never limited, so the setup uploads and downloads here are free.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { fixture, freePort, startCluster, waitFor, type Cluster } from './harness.js';

// A 10 s window: bursts of up to max, then one more every 10 s / max.
const LIMITS = {
  TRUST_PROXY: 'true',
  RATE_LIMIT_WINDOW_SECONDS: '10',
  RATE_LIMIT_UPLOADS: '4',
  RATE_LIMIT_DOWNLOADS: '6',
  RATE_LIMIT_MISSES: '3',
};

let cluster: Cluster;
let gw1: string;
let gw2: string;
let gwOff: string;

beforeAll(async () => {
  cluster = await startCluster({ env: LIMITS });
  gw1 = cluster.gatewayUrl;
  gw2 = await cluster.startGateway('gw2');
  gwOff = await cluster.startGateway('gw-off', { RATE_LIMITS: 'off' });
});
afterAll(async () => {
  await cluster?.stop();
});

const showLogsOnFailure = () => onTestFailed(() => console.log(cluster.logTail(30)));

/** A fresh client address per test, so no test spends another's budget. */
let nextClient = 1;
const newClient = () => `203.0.113.${nextClient++}`;

/** A request from `client` (X-Forwarded-For), or from loopback when undefined. */
async function send(base: string, path: string, client?: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  if (client) headers.set('x-forwarded-for', client);
  const res = await fetch(`${base}${path}`, { ...init, headers });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  const json = type.includes('json') ? JSON.parse(text) : undefined;
  return { status: res.status, retryAfter: res.headers.get('retry-after'), json, type, text };
}

const upload = (base: string, client?: string, query = 'max_downloads=0') =>
  send(base, `/upload/p.jpg?${query}`, client, { method: 'PUT', body: fixture('photo.jpg') });

async function uploadedId(query = 'max_downloads=0'): Promise<string> {
  const res = await upload(gw1, undefined, query);
  expect(res.status).toBe(201);
  return res.json.id;
}

const guessedId = () => randomBytes(16).toString('base64url');
const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

/** A 429 naming `variable`: JSON from the API, an HTML page from the share page (/s/:id). */
function expectRateLimited(res: Awaited<ReturnType<typeof send>>, variable: string) {
  expect(res.status).toBe(429);
  if (res.type.startsWith('text/html')) {
    expect(res.text).toContain('data-code="RATE_LIMITED"');
    expect(res.text).toContain(variable);
  } else {
    expect(res.json.error.code).toBe('RATE_LIMITED');
    expect(res.json.error.message).toContain(variable);
  }
  expect(Number(res.retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(res.retryAfter)).toBeLessThanOrEqual(10);
}

describe('rate limits', () => {
  it('holds the upload limit across both gateways, per client, and lifts it after Retry-After', async () => {
    showLogsOnFailure();
    const client = newClient();
    // At once, half to each gateway: the shared budget lets exactly 4 through.
    const burst = await Promise.all(
      Array.from({ length: 6 }, (_, i) => upload(i % 2 ? gw2 : gw1, client)),
    );
    expect(burst.filter((r) => r.status === 201)).toHaveLength(4);
    const refused = burst.filter((r) => r.status === 429);
    expect(refused).toHaveLength(2);
    for (const r of refused) expectRateLimited(r, 'RATE_LIMIT_UPLOADS');
    // Another client, and the machine itself, are not held to that client's budget.
    expect((await upload(gw2, newClient())).status).toBe(201);
    expect((await upload(gw2)).status).toBe(201);

    const wait = Number(refused[0]!.retryAfter);
    await sleep(wait);
    // The wait earned one request: of two sent together, one is taken and the other refused.
    // (Sent one after the other, a slow upload could outlast the 2.5 s a request is worth.)
    const after = await Promise.all([upload(gw2, client), upload(gw1, client)]);
    expect(after.map((r) => r.status).sort()).toEqual([201, 429]);
    expectRateLimited(
      after.find((r) => r.status === 429)!,
      'RATE_LIMIT_UPLOADS',
    );
  });

  it('holds the download-attempt limit across both gateways, share pages included', async () => {
    showLogsOnFailure();
    const id = await uploadedId();
    const client = newClient();
    const burst = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        send(i % 2 ? gw2 : gw1, i % 3 === 0 ? `/s/${id}` : `/download/${id}`, client),
      ),
    );
    expect(burst.filter((r) => r.status === 200)).toHaveLength(6);
    const refused = burst.filter((r) => r.status === 429);
    expect(refused).toHaveLength(4);
    for (const r of refused) expectRateLimited(r, 'RATE_LIMIT_DOWNLOADS');
    expect((await send(gw1, `/download/${id}`, newClient())).status).toBe(200);
    expect((await send(gw1, `/download/${id}`)).status).toBe(200);
    // Metadata is not a download attempt: the page polls it.
    expect((await send(gw1, `/files/${id}`, client)).status).toBe(200);

    await sleep(Number(refused[0]!.retryAfter));
    expect((await send(gw2, `/download/${id}`, client)).status).toBe(200);
  });

  it('refuses a client that guessed ids, even for a real file, until Retry-After has passed', async () => {
    showLogsOnFailure();
    const id = await uploadedId();
    const client = newClient();
    for (const base of [gw1, gw2, gw1]) {
      const res = await send(base, `/download/${guessedId()}`, client);
      expect(res.status).toBe(404);
      expect(res.json.error.code).toBe('FILE_NOT_FOUND');
    }
    const refused = await send(gw2, `/download/${id}`, client);
    expectRateLimited(refused, 'RATE_LIMIT_MISSES');
    expect(refused.json.error.message).toMatch(/downloads are refused for \d+ s/);
    // The share page is for people: its refusal is an HTML page, with the same Retry-After.
    const page = await send(gw1, `/s/${id}`, client);
    expect([page.status, page.type]).toEqual([429, 'text/html; charset=UTF-8']);
    expect(page.text).toContain('data-code="RATE_LIMITED"');
    expect(Number(page.retryAfter)).toBeGreaterThanOrEqual(1);
    expect((await send(gw1, `/files/${id}/thumbnail`, client)).status).toBe(429);
    // Someone else is not affected.
    expect((await send(gw1, `/download/${id}`, newClient())).status).toBe(200);

    await sleep(Number(refused.retryAfter));
    expect((await send(gw2, `/download/${id}`, client)).status).toBe(200);
  });

  it('counts share-page misses and deleted files, but not a used-up link', async () => {
    showLogsOnFailure();
    // A used-up link answers 410 DOWNLOAD_LIMIT_REACHED: its holder is no guesser.
    const usedUp = await uploadedId('max_downloads=1');
    expect((await send(gw1, `/download/${usedUp}`)).status).toBe(200);
    const holder = newClient();
    for (let i = 0; i < 5; i++) {
      const res = await send(i % 2 ? gw2 : gw1, `/download/${usedUp}`, holder);
      expect(res.status).toBe(410);
      expect(res.json.error.code).toBe('DOWNLOAD_LIMIT_REACHED');
    }
    const live = await uploadedId();
    expect((await send(gw2, `/download/${live}`, holder)).status).toBe(200);

    // A deleted file (410 FILE_DELETED) and unknown share pages (404 HTML) are misses.
    const created = await upload(gw1);
    const del = await send(gw1, `/files/${created.json.id}`, undefined, {
      method: 'DELETE',
      headers: { 'x-delete-token': created.json.delete_token },
    });
    expect(del.status).toBe(204);
    const scanner = newClient();
    const deleted = await send(gw1, `/download/${created.json.id}`, scanner);
    expect(deleted.json.error.code).toBe('FILE_DELETED');
    expect((await send(gw2, `/s/${guessedId()}`, scanner)).status).toBe(404);
    expect((await send(gw1, `/s/${guessedId()}`, scanner)).status).toBe(404);
    expectRateLimited(await send(gw2, `/download/${live}`, scanner), 'RATE_LIMIT_MISSES');
  });

  it('refuses nothing with RATE_LIMITS=off, over the same traffic', async () => {
    showLogsOnFailure();
    const id = await uploadedId();
    const client = newClient();
    const statuses = [
      ...(await Promise.all(Array.from({ length: 6 }, () => upload(gwOff, client)))),
      ...(await Promise.all(
        Array.from({ length: 10 }, () => send(gwOff, `/download/${id}`, client)),
      )),
      ...(await Promise.all(
        Array.from({ length: 5 }, () => send(gwOff, `/download/${guessedId()}`, client)),
      )),
      await send(gwOff, `/download/${id}`, client),
    ].map((r) => r.status);
    expect(statuses).not.toContain(429);
    expect(statuses.filter((s) => s === 404)).toHaveLength(5);
    expect(statuses.filter((s) => s === 201 || s === 200)).toHaveLength(17);
  });

  it('lets requests through when Redis is unreachable (fail open), with a warning', async () => {
    showLogsOnFailure();
    const id = await uploadedId();
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const gw = await cluster.startGateway('gw-no-redis', { REDIS_URL: nowhere });
    const client = newClient();
    const statuses = await Promise.all(
      Array.from({ length: 10 }, () => send(gw, `/download/${id}`, client)),
    );
    expect(statuses.map((r) => r.status)).toEqual(Array(10).fill(200));
    const log = cluster.proc('gw-no-redis')!.logFile;
    await waitFor('the fail-open warning', async () =>
      readFileSync(log, 'utf8').includes('rate limits not enforced'),
    );
    await cluster.kill('gw-no-redis', 'SIGKILL');
  });
});

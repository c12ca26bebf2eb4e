/**
 * The browser page's resumable uploads and local previews, in Debian's
 * Chromium (playwright-core, as test/browser.test.ts) against a real cluster
 * whose page sends files over 1 MiB through tus (/tus/) in 1 MiB chunks: a
 * 6 MiB upload that survives the browser going offline, one resumed after a
 * reload, one through a signed upload link, a small file still in one POST
 * /upload, and a card that shows the chosen file at once and never asks for a
 * thumbnail before it exists. UPLOAD_TOKEN is set: the page sends it to tus.
 * Screenshots go to test-artifacts/ (git-ignored).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  chromium,
  type Browser,
  type BrowserContext,
  type Locator,
  type Page,
  type Route,
} from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ROOT, fixture, logLines, sha256, startCluster, type Cluster } from './harness.js';
import { CHROMIUM_ARGS, findChromium, skipWithout } from './required-tools.js';

const CHROMIUM = findChromium();
const PHOTO = join(ROOT, 'test', 'fixtures', 'photo.jpg');
const ARTIFACTS = join(ROOT, 'test-artifacts');
const MiB = 1024 * 1024;
const WAITING = 'Waiting for the network…';
const UPLOAD_TOKEN = 'page-upload-token-0123';
const ADMIN_TOKEN = 'page-admin-token-0123456789';
// Skipped, saying why, where Chromium is missing; a failure instead under TROVE_TEST_REQUIRE (CI).
const noChromium = skipWithout(
  'chromium',
  CHROMIUM,
  'apt-get install -y chromium, or set CHROMIUM_PATH',
);

let cluster: Cluster;
let browser: Browser;
let tmp: string;
/** Contexts of the test running (each test has its own localStorage), closed after it. */
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  if (noChromium) return;
  await mkdir(ARTIFACTS, { recursive: true });
  cluster = await startCluster({
    worker: true,
    env: {
      RESUMABLE_THRESHOLD_BYTES: String(MiB),
      RESUMABLE_CHUNK_BYTES: String(MiB),
      UPLOAD_TOKEN,
      ADMIN_TOKEN,
    },
  });
  tmp = await mkdtemp(join(tmpdir(), 'trove-resumable-page-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
});
afterEach(async () => {
  for (const context of contexts.splice(0)) await context.close();
});
afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** A JPEG of 6 MiB (six chunks) on disk: the fixture's bytes (so it is a picture), then noise. */
async function bigJpeg(name: string): Promise<{ path: string; data: Buffer }> {
  const head = fixture('photo.jpg');
  const data = Buffer.concat([head, randomBytes(6 * MiB - head.length)]);
  const path = join(tmp, name);
  await writeFile(path, data);
  return { path, data };
}

interface Seen {
  method: string;
  url: string;
  status: number;
  /** Trove-File-Id of a PATCH's answer: the last one names the file made. */
  fileId: string | undefined;
}

/** The page's localStorage as the tests use it (no DOM types in this Node project). */
interface PageStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}
/** The page's globals the tests touch. */
type PageGlobals = { localStorage: PageStorage };

/**
 * A page of a fresh context that knows the upload token (as if typed in once),
 * with every response it gets recorded; `path` /u/<token> opens it in link mode.
 */
async function openPage(
  path = '/',
): Promise<{ context: BrowserContext; page: Page; seen: Seen[] }> {
  const context = await browser.newContext();
  contexts.push(context);
  if (path === '/')
    await context.addInitScript((token) => {
      const storage = (globalThis as unknown as PageGlobals).localStorage;
      if (!storage.getItem('trove.uploadToken')) storage.setItem('trove.uploadToken', token);
    }, UPLOAD_TOKEN);
  const page = await context.newPage();
  const seen: Seen[] = [];
  page.on('response', (r) =>
    seen.push({
      method: r.request().method(),
      url: r.url(),
      status: r.status(),
      fileId: r.headers()['trove-file-id'],
    }),
  );
  await page.goto(`${cluster.gatewayUrl}${path}`);
  return { context, page, seen };
}

/**
 * Holds each PATCH to /tus/ a moment before it goes: on loopback the six
 * chunks would otherwise be in before the test can go offline or reload.
 */
async function slowPatches(page: Page): Promise<void> {
  await page.route(
    (url) => url.pathname.startsWith('/tus/'),
    async (route: Route) => {
      if (route.request().method() === 'PATCH') await sleep(400);
      // Offline or reloaded meanwhile: the request fails or is gone, as it would on a real network.
      await route.continue().catch(() => undefined);
    },
  );
}

/** At phone width, where an empty thumbnail box showed most. */
async function shot(page: Page, name: string): Promise<void> {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(ARTIFACTS, `resumable-${name}.png`), fullPage: true });
}

const percentOf = (card: Locator) => async () =>
  Number.parseInt((await card.locator('.percent').textContent()) ?? '', 10);

/** Gateway request lines (shared/request-log.ts) from the `from`-th on. */
function gatewayRequests(from = 0): { method: string; path: string; status: number }[] {
  return logLines(cluster, 'gateway', (l) => l.msg === 'request').slice(from) as {
    method: string;
    path: string;
    status: number;
  }[];
}

/** The file object of the upload a card's share link names (GET /files/:id, from Node). */
async function fileOfCard(
  card: Locator,
): Promise<{ id: string; url: string; size: number; max_downloads: number | null }> {
  const shareUrl = await card.locator('.share-link').inputValue();
  expect(shareUrl).toMatch(new RegExp(`^${cluster.gatewayUrl}/s/[A-Za-z0-9_-]{22}$`));
  const id = shareUrl.split('/').pop()!;
  const res = await fetch(`${cluster.gatewayUrl}/files/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Awaited<ReturnType<typeof fileOfCard>>;
}

async function downloadSha256(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return sha256(Buffer.from(await res.arrayBuffer()));
}

/** On failure: the log tails, and every request the gateway logged since the test began. */
function explainFailure(from: number): void {
  onTestFailed(() => {
    console.log(cluster.logTail());
    for (const r of gatewayRequests(from)) console.log(r.method, r.path, r.status);
  });
}

/** Responses the page got that a person would see as errors in the console. */
const notFound = (seen: Seen[]) => seen.filter((r) => r.status === 404);

describe.skipIf(noChromium)('browser page: resumable uploads and previews', () => {
  it('sends a big file through tus, waits out a network drop, and finishes', async () => {
    const { data, path } = await bigJpeg('big.jpg');
    const from = gatewayRequests().length;
    explainFailure(from);
    const { context, page, seen } = await openPage();
    await slowPatches(page);
    await page.locator('#file-input').setInputFiles(path);

    const card = page.locator('.upload').first();
    // The chosen file shows at once, from the disk.
    expect(await card.locator('img.thumb').getAttribute('src')).toMatch(/^blob:/);
    expect(await card.locator('.badge').textContent()).toBe('Resumable');
    await expect.poll(percentOf(card), { timeout: 30_000 }).toBeGreaterThanOrEqual(30);

    await context.setOffline(true);
    await expect.poll(() => card.locator('.status').textContent()).toBe(WAITING);
    const stalled = await percentOf(card)();
    expect(stalled).toBeLessThan(100);
    await sleep(2000);
    expect(await percentOf(card)()).toBe(stalled);
    expect(await card.locator('.status').textContent()).toBe(WAITING);
    await shot(page, '1-waiting-for-the-network');

    await context.setOffline(false);
    await card.locator('.share-link').waitFor({ timeout: 60_000 });
    expect(await card.locator('.percent').textContent()).toBe('100%');
    expect(await card.locator('.status').textContent()).toBe('Uploaded');
    await shot(page, '2-uploaded');
    const file = await fileOfCard(card);
    expect(file.size).toBe(data.length);
    expect(await downloadSha256(file.url)).toBe(sha256(data));

    // One creation, then chunks by PATCH to its URL: some before the drop, the offset asked
    // again (HEAD), the rest; none sent twice. No POST /upload.
    const requests = gatewayRequests(from);
    expect(requests.filter((r) => r.path.startsWith('/upload'))).toEqual([]);
    const tus = requests.filter((r) => r.path.startsWith('/tus'));
    expect(tus.filter((r) => r.method === 'POST')).toHaveLength(1);
    const patches = tus.filter((r) => r.method === 'PATCH');
    expect(new Set(patches.map((r) => r.path)).size).toBe(1);
    const resumed = tus.findIndex((r) => r.method === 'HEAD' && r.path === patches[0]!.path);
    expect(resumed).toBeGreaterThan(0);
    const stored = (lines: typeof tus) =>
      lines.filter((r) => r.method === 'PATCH' && r.status === 204);
    const before = stored(tus.slice(0, resumed)).length;
    const after = stored(tus.slice(resumed)).length;
    expect(before).toBeGreaterThanOrEqual(1);
    expect(after).toBeGreaterThanOrEqual(1);
    // Six chunks; five answered when the server kept the one the drop cut off (HEAD said so).
    expect(before + after).toBeGreaterThanOrEqual(5);
    expect(before + after).toBeLessThanOrEqual(6);
    // The last PATCH named the file it made (the page then asked the upload's URL for it).
    const answered = seen.filter((r) => r.method === 'PATCH' && r.status === 204);
    expect(answered.at(-1)!.fileId).toBe(file.id);
    expect(answered.slice(0, -1).every((r) => r.fileId === undefined)).toBe(true);
    expect(notFound(seen)).toEqual([]);
  });

  it('resumes after a reload when the same file is chosen again', async () => {
    const { data, path } = await bigJpeg('reloaded.jpg');
    const from = gatewayRequests().length;
    explainFailure(from);
    const { page, seen } = await openPage();
    await slowPatches(page);
    await page.locator('#file-input').setInputFiles(path);
    const first = page.locator('.upload').first();
    await expect.poll(percentOf(first), { timeout: 30_000 }).toBeGreaterThanOrEqual(30);

    await page.reload();
    expect(await page.locator('.upload').count()).toBe(0); // unfinished: not in "my uploads"
    await page.locator('#file-input').setInputFiles(path);
    const card = page.locator('.upload').first();
    await card.locator('.share-link').waitFor({ timeout: 60_000 });
    const file = await fileOfCard(card);
    expect(await downloadSha256(file.url)).toBe(sha256(data));

    const tus = gatewayRequests(from).filter((r) => r.path.startsWith('/tus'));
    expect(tus.filter((r) => r.method === 'POST')).toHaveLength(1);
    const uploadPath = tus.find((r) => r.method === 'PATCH')!.path;
    expect(tus.some((r) => r.method === 'HEAD' && r.path === uploadPath)).toBe(true);
    // Fewer chunks than a fresh start after the reload: the first ones were not sent again.
    const head = tus.findIndex((r) => r.method === 'HEAD');
    const after = tus.slice(head).filter((r) => r.method === 'PATCH' && r.status === 204);
    expect(after.length).toBeLessThan(6);
    // The stored URL is forgotten once done: choosing the file again uploads it anew.
    expect(
      await page.evaluate(() =>
        Object.keys((globalThis as unknown as PageGlobals).localStorage).filter((k) =>
          k.startsWith('tus::'),
        ),
      ),
    ).toEqual([]);
    expect(notFound(seen)).toEqual([]);
  });

  it('uploads a big file through a signed upload link, without the token', async () => {
    const { data, path } = await bigJpeg('linked.jpg');
    const from = gatewayRequests().length;
    explainFailure(from);
    const minted = await fetch(`${cluster.gatewayUrl}/admin/upload-links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ expires_in: 600, max_files: 1, max_downloads: 2 }),
    });
    expect(minted.status).toBe(201);
    const link = (await minted.json()) as { token: string };
    const { page, seen } = await openPage(`/u/${link.token}`);
    await page.locator('#file-input').setInputFiles(path);
    const card = page.locator('.upload').first();
    expect(await card.locator('.badge').textContent()).toBe('Resumable');
    await card.locator('.share-link').waitFor({ timeout: 60_000 });
    const file = await fileOfCard(card);
    expect(file.max_downloads).toBe(2); // the link's, not the page's default
    expect(await downloadSha256(file.url)).toBe(sha256(data));
    // The link went with the creation only (the upload's URL is the key after it).
    const creations = seen.filter((r) => r.method === 'POST' && r.url.includes('/tus/'));
    expect(creations.map((r) => [new URL(r.url).searchParams.get('link'), r.status])).toEqual([
      [link.token, 201],
    ]);
    expect(seen.filter((r) => r.method === 'PATCH').every((r) => !r.url.includes('link='))).toBe(
      true,
    );
    expect(gatewayRequests(from).filter((r) => r.path.startsWith('/upload'))).toEqual([]);
    expect(notFound(seen)).toEqual([]);
  });

  it('sends a small file in one POST /upload, previewed until its thumbnail exists', async () => {
    const from = gatewayRequests().length;
    explainFailure(from);
    const { page, seen } = await openPage();
    await page.locator('#file-input').setInputFiles(PHOTO);
    const card = page.locator('.upload').first();
    const thumb = card.locator('img.thumb');
    const preview = await thumb.getAttribute('src');
    expect(preview).toMatch(/^blob:/);
    await card.locator('.share-link').waitFor();
    expect(await card.locator('.badge').count()).toBe(0);
    const file = await fileOfCard(card);

    // Once the worker has made it, the server's thumbnail replaces the preview, which is let go.
    await expect
      .poll(() => thumb.getAttribute('src'), { timeout: 30_000 })
      .toBe(`/files/${file.id}/thumbnail`);
    await expect
      .poll(() =>
        thumb.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
      )
      .toBeGreaterThan(0);
    await expect
      .poll(() =>
        page.evaluate(
          (url) =>
            fetch(url).then(
              () => 'still there',
              () => 'revoked',
            ),
          preview!,
        ),
      )
      .toBe('revoked');

    const requests = gatewayRequests(from);
    expect(requests.filter((r) => r.method === 'POST' && r.path === '/upload')).toHaveLength(1);
    expect(requests.filter((r) => r.path.startsWith('/tus'))).toEqual([]);
    const thumbnails = seen.filter((r) => r.url.endsWith(`/files/${file.id}/thumbnail`));
    expect(thumbnails.map((r) => r.status)).toEqual([200]);
    expect(notFound(seen)).toEqual([]);

    // After a reload (no local file): the server's thumbnail, asked for only once it exists.
    await page.reload();
    const stored = page.locator(`.upload[data-id="${file.id}"] img.thumb`);
    await expect.poll(() => stored.getAttribute('src')).toBe(`/files/${file.id}/thumbnail`);
    expect(notFound(seen)).toEqual([]);
  });
});

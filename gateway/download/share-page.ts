/**
 * GET /s/:id: the share page people open from a link. It shows the file and a
 * Download button that GETs /download/:id; the page itself never takes a
 * download, because link-preview bots (chat apps, mail scanners) fetch every
 * shared URL. Its Open Graph tags point at the thumbnail, which never counts
 * either. Unknown, expired, deleted and used-up links get HTML pages too.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { TooManyRequestsError, TroveError } from '../../shared/errors.js';
import type { FileRecord, MetadataStore } from '../../shared/metadata-store.js';
import { assertDownloadable, downloadsLeft, findFile } from '../files/file-rules.js';
import { PAGE_HEADERS, escapeHtml, humanBytes, humanUntil, page } from '../http/html.js';
import { baseUrl, type PublicUrlConfig } from '../http/public-url.js';

export interface SharePageDeps {
  store: MetadataStore;
  urls: PublicUrlConfig;
}

/** What the page shows of a file; `thumbnail` is an absolute URL once the worker made it. */
export interface ShareView {
  id: string;
  name: string;
  size: number;
  downloadsLeft: number | null;
  maxDownloads: number;
  expiresAt: number;
  base: string;
  thumbnail: string | undefined;
}

export async function handleSharePage(deps: SharePageDeps, c: Context) {
  try {
    const file = await findFile(deps.store, c.req.param('id'));
    assertDownloadable(file);
    const base = baseUrl((n) => c.req.header(n), c.req.url, deps.urls);
    const view = await shareView(deps.store, file, base);
    return c.html(sharePageHtml(view), 200, PAGE_HEADERS);
  } catch (err) {
    if (!(err instanceof TroveError) || (err.status !== 404 && err.status !== 410)) throw err;
    // Answered here as HTML, but middleware still needs to see why (rate-limit.ts counts misses).
    c.error = err;
    return c.html(errorPageHtml(err), err.status as 404 | 410, PAGE_HEADERS);
  }
}

async function shareView(store: MetadataStore, file: FileRecord, base: string): Promise<ShareView> {
  const variants = file.processing === 'done' ? await store.variantsOf(file.id) : [];
  const thumbReady = variants.some((v) => v.variant === 'thumb');
  return {
    id: file.id,
    name: file.name,
    size: file.size,
    downloadsLeft: downloadsLeft(file),
    maxDownloads: file.maxDownloads,
    expiresAt: file.expiresAt,
    base,
    thumbnail: thumbReady ? `${base}/files/${file.id}/thumbnail` : undefined,
  };
}

function leftText(v: Pick<ShareView, 'downloadsLeft' | 'maxDownloads'>): string {
  if (v.downloadsLeft === null) return 'unlimited downloads';
  return `${v.downloadsLeft} of ${v.maxDownloads} download${v.maxDownloads === 1 ? '' : 's'} left`;
}

/** Open Graph and Twitter tags: what a chat app shows when the link is pasted. */
function previewMeta(v: ShareView, description: string): string {
  const tags: [string, string][] = [
    ['og:type', 'website'],
    ['og:site_name', 'Trove'],
    ['og:title', v.name],
    ['og:description', description],
    ['og:url', `${v.base}/s/${v.id}`],
  ];
  if (v.thumbnail) tags.push(['og:image', v.thumbnail]);
  const og = tags.map(([p, content]) => `<meta property="${p}" content="${escapeHtml(content)}">`);
  const card = v.thumbnail ? 'summary_large_image' : 'summary';
  return [
    ...og,
    `<meta name="twitter:card" content="${card}">`,
    `<meta name="description" content="${escapeHtml(description)}">`,
    // Search engines have no business indexing one-off links.
    '<meta name="robots" content="noindex, nofollow">',
    '<script src="/static/share.js" defer></script>',
  ].join('\n');
}

export function sharePageHtml(v: ShareView, now = Date.now()): string {
  const expires = new Date(v.expiresAt).toISOString();
  const description = `${humanBytes(v.size)} · ${leftText(v)} · expires ${humanUntil(v.expiresAt - now)}`;
  const thumb = v.thumbnail
    ? // Relative: the page may be opened on another host than PUBLIC_URL (a LAN address), and CSP allows 'self'.
      `<img class="share-thumb" src="/files/${escapeHtml(v.id)}/thumbnail" alt="${escapeHtml(v.name)}">`
    : '<div class="share-thumb placeholder" aria-hidden="true">🖼</div>';
  const body = `<main class="share" data-id="${escapeHtml(v.id)}">
<h1 class="brand"><a href="/">Trove</a></h1>
<section class="card">
${thumb}
<h2 class="share-name">${escapeHtml(v.name)}</h2>
<dl class="facts">
<dt>Size</dt><dd>${escapeHtml(humanBytes(v.size))}</dd>
<dt>Downloads</dt><dd class="downloads-left" data-left="${v.downloadsLeft ?? 'unlimited'}">${escapeHtml(leftText(v))}</dd>
<dt>Expires</dt><dd><time class="expires" datetime="${expires}">${escapeHtml(humanUntil(v.expiresAt - now))}</time></dd>
</dl>
<a class="button primary download" href="/download/${escapeHtml(v.id)}" download="${escapeHtml(v.name)}">Download</a>
<p class="hint">Opening this page does not use a download; the button does.</p>
</section>
</main>`;
  return page(`${v.name} · Trove`, previewMeta(v, description), body);
}

const ERROR_TITLES: Record<string, string> = {
  FILE_NOT_FOUND: 'No such link',
  FILE_EXPIRED: 'This link has expired',
  FILE_DELETED: 'This file was deleted',
  DOWNLOAD_LIMIT_REACHED: 'No downloads left',
  RATE_LIMITED: 'Too many requests',
};

/**
 * Before the rate limits of /s/:id: a person refused with 429 gets the HTML
 * error page (with its Retry-After), not the JSON every API answer has.
 */
export const sharePageRefusals: MiddlewareHandler = async (c, next) => {
  await next();
  const err = c.error;
  if (!(err instanceof TooManyRequestsError)) return;
  c.res = undefined; // replaced whole: the JSON answer's headers do not carry over
  c.res = c.html(errorPageHtml(err), 429, {
    ...PAGE_HEADERS,
    'retry-after': String(err.retryAfterSeconds),
  });
};

export function errorPageHtml(err: TroveError): string {
  const title = ERROR_TITLES[err.code] ?? 'Not available';
  const body = `<main class="share">
<h1 class="brand"><a href="/">Trove</a></h1>
<section class="card error" data-code="${escapeHtml(err.code)}">
<h2>${escapeHtml(title)}</h2>
<p>${escapeHtml(err.message)}.</p>
</section>
</main>`;
  return page(`${title} · Trove`, '<meta name="robots" content="noindex, nofollow">', body);
}

// Trove's browser page: uploads with real progress (big files through tus,
// resumable after a network drop or a reload), a local preview of each chosen
// picture, "my uploads" kept in localStorage (with their delete tokens), and
// the cluster's health. Plain DOM, no build step; every text from the server
// goes in as textContent.
'use strict';

const TOKEN_KEY = 'trove.uploadToken';
const UPLOADS_KEY = 'trove.uploads';
const $ = (id) => document.getElementById(id);
/** On /u/<token> (a signed upload link), uploads go through that link: no upload token needed. */
const LINK = location.pathname.startsWith('/u/') ? location.pathname.slice(3) : null;

/** GET /api/config; until it answers (or if it fails), every file goes in one request. */
let config = {
  upload_token_required: false,
  max_upload_bytes: Infinity,
  resumable_path: '/tus',
  resumable_threshold_bytes: Infinity,
  resumable_chunk_bytes: 8 * 1024 * 1024,
};
/** Uploads waiting for a token (answered 401, or not sent yet). */
const needToken = [];
/** The card of each finished upload on the page, by id. */
const cards = new Map();
/**
 * Resumable uploads under way, each `{ upload, card, stopped }`; a stopped
 * one waits for the network and starts again on the 'online' event.
 */
const resumables = new Set();
/**
 * Waits (ms) before each retry of a resumable upload's request: quick at
 * first, then every 30 s for a quarter of an hour (a network drop, a gateway
 * restart). Any progress starts the count again.
 */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, ...Array(30).fill(30000)];
/** Waits (ms) between looks for a fresh upload's thumbnail: about a minute, then the 5 s refresh goes on. */
const THUMB_POLL_DELAYS = [500, 1000, 1000, 2000, 3000, 5000, 8000, 13000, 20000];
const WAITING_TEXT = 'Waiting for the network…';

// ── small helpers ──────────────────────────────────────────────────────────

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function humanBytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function countdown(expiresAt) {
  const s = Math.floor((Date.parse(expiresAt) - Date.now()) / 1000);
  if (s <= 0) return 'expired';
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (x) => String(x).padStart(2, '0');
  return `expires in ${d ? `${d}d ` : ''}${h ? `${h}h ` : ''}${pad(m)}m ${pad(s % 60)}s`;
}

function showMessage(text) {
  const box = $('message');
  box.textContent = text;
  box.hidden = !text;
}

function leftText(f) {
  if (f.downloads_left === null || f.downloads_left === undefined) return 'unlimited downloads';
  return `${f.downloads_left} of ${f.max_downloads} downloads left`;
}

/** What a failed request should tell a person, by status. */
function errorText(status, body) {
  const detail = body && body.error ? body.error.message : '';
  switch (status) {
    case 401:
      return 'This server needs an upload token.';
    case 403:
      return `Refused: ${detail || 'this upload link is not valid'}.`;
    case 413:
      return `Too large: ${detail || `the limit is ${humanBytes(config.max_upload_bytes)}`}.`;
    case 415:
      return 'Not an image this server accepts (JPEG, PNG, WebP, GIF, AVIF…).';
    case 429:
      return `Too many uploads from this address: ${detail || 'slow down'}. Retry in a moment.`;
    case 503:
      return 'Storage is unavailable right now (not enough storage nodes up). Try again in a moment.';
    case 0:
      return 'Network error: the connection to the server was lost.';
    default:
      return `Upload failed (${status})${detail ? `: ${detail}` : ''}.`;
  }
}

// ── stored uploads ─────────────────────────────────────────────────────────

function loadStored() {
  try {
    return JSON.parse(localStorage.getItem(UPLOADS_KEY) || '[]');
  } catch {
    return [];
  }
}

function saveStored(list) {
  localStorage.setItem(UPLOADS_KEY, JSON.stringify(list));
}

function remember(file) {
  const list = loadStored().filter((f) => f.id !== file.id);
  list.unshift(file);
  saveStored(list);
}

function forget(id) {
  saveStored(loadStored().filter((f) => f.id !== id));
}

function updateStored(id, patch) {
  saveStored(loadStored().map((f) => (f.id === id ? { ...f, ...patch } : f)));
}

// ── one upload's card ──────────────────────────────────────────────────────

/** A new card at the top of "my uploads"; with the chosen `file`, its picture shows at once. */
function uploadCard(name, file = null) {
  const thumb = el('img', { class: 'thumb', alt: '' });
  const title = el('div', { class: 'name', text: name });
  const progress = el('progress', { max: '100', value: '0' });
  const percent = el('span', { class: 'percent', text: '0%' });
  const status = el('div', { class: 'status', text: 'Waiting…' });
  const actions = el('div', { class: 'row actions' });
  const details = el('div', { class: 'details' });
  const body = el('div', {}, title, progress, percent, status);
  body.append(actions, details);
  const li = el('li', { class: 'upload' }, thumb, body);
  $('uploads').prepend(li);
  $('no-uploads').hidden = true;
  const card = { li, thumb, title, progress, percent, status, actions, details };
  card.preview = null; // the blob: URL of the local file shown, while it is
  card.serverThumb = false; // whether /files/:id/thumbnail was asked for
  if (file) showPreview(card, file);
  return card;
}

function showProgress(card, loaded, total) {
  const pct = total > 0 ? Math.floor((loaded / total) * 100) : 0;
  card.progress.value = pct;
  card.percent.textContent = `${pct}%`;
}

function setStatus(card, text, isError = false) {
  card.status.textContent = text;
  card.status.classList.toggle('error', isError);
}

function button(text, cls, onClick) {
  const b = el('button', { type: 'button', class: `button ${cls}`, text });
  b.addEventListener('click', onClick);
  return b;
}

async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain-http LAN pages have no clipboard API: fall back to selecting the text.
    input.select();
    document.execCommand('copy');
  }
}

/** Fills a card with an upload: link, QR code, count, countdown, delete (a fresh one keeps its full bar). */
function showDone(card, f, fresh = false) {
  card.li.dataset.id = f.id;
  cards.set(f.id, card);
  card.progress.hidden = !fresh;
  card.percent.hidden = !fresh;
  card.actions.replaceChildren();
  const link = el('input', { class: 'share-link', readonly: '', value: f.share_url });
  const copyBtn = button('Copy', 'copy', () =>
    copy(f.share_url, link).then(() => (copyBtn.textContent = 'Copied')),
  );
  const qr = el('img', {
    class: 'qr',
    alt: `QR code of ${f.share_url}`,
    src: `/qr?text=${encodeURIComponent(f.share_url)}`,
  });
  const left = el('div', { class: 'left', text: leftText(f) });
  const expires = el('div', { class: 'expires', 'data-expires': f.expires_at });
  expires.textContent = countdown(f.expires_at);
  const del = button('Delete', 'danger delete', () => deleteUpload(card, f));
  card.details.replaceChildren(
    el('div', { class: 'row' }, link, copyBtn),
    el('div', { class: 'row' }, qr, el('div', {}, left, expires, del)),
  );
  card.details.firstChild.style.width = '100%';
  setStatus(card, 'Uploaded');
  card.left = left;
}

// ── the card's picture ─────────────────────────────────────────────────────

/** The chosen file itself, at once and without a request; a type this browser cannot show leaves the box empty. */
function showPreview(card, file) {
  if (!file.type.startsWith('image/')) return;
  card.preview = URL.createObjectURL(file);
  card.thumb.onerror = () => {
    card.thumb.onerror = null;
    dropPreview(card);
    card.thumb.removeAttribute('src');
  };
  card.thumb.src = card.preview;
}

/** Lets the browser let go of the file a preview holds. */
function dropPreview(card) {
  if (!card.preview) return;
  URL.revokeObjectURL(card.preview);
  card.preview = null;
}

/** Whether the worker has made the file's thumbnail: before, /files/:id/thumbnail answers 404. */
function hasThumbnail(f) {
  return Boolean(f && f.processing && f.processing.variants && f.processing.variants.thumbnail);
}

/** The server's thumbnail, once it exists; a preview stays on screen until the thumbnail has loaded. */
function showServerThumb(card, f) {
  if (card.serverThumb || !hasThumbnail(f)) return;
  card.serverThumb = true;
  card.thumb.onload = () => {
    card.thumb.onload = card.thumb.onerror = null;
    dropPreview(card);
  };
  card.thumb.onerror = () => {
    // Never a broken image: back to the preview, or an empty box.
    card.thumb.onload = card.thumb.onerror = null;
    if (card.preview) card.thumb.src = card.preview;
    else card.thumb.removeAttribute('src');
  };
  card.thumb.src = `/files/${f.id}/thumbnail`;
}

/**
 * After an upload: looks for its thumbnail often at first, then less, and
 * stops after about a minute or once processing ended without one (then the
 * preview stays; the 5 s refresh of "my uploads" goes on looking).
 */
async function watchThumbnail(card, id) {
  for (const delay of THUMB_POLL_DELAYS) {
    await sleep(delay);
    if (card.serverThumb || cards.get(id) !== card) return;
    try {
      const res = await fetch(`/files/${id}`);
      if (!res.ok) return; // gone: the refresh tells the card
      const f = await res.json();
      showServerThumb(card, f);
      if (!f.processing || f.processing.state !== 'pending') return;
    } catch {
      // offline: look again after the next wait
    }
  }
}

/** Applies a fresh GET /files/:id (or its 404/410) to a card. */
function refreshCard(card, status, f) {
  if (
    status === 404 ||
    status === 410 ||
    (f && f.status !== 'active' && f.status !== 'exhausted')
  ) {
    card.li.classList.add('gone');
    setStatus(card, status === 404 ? 'Gone' : `No longer available (${f ? f.status : 'gone'})`);
    card.actions.replaceChildren(button('Remove', 'remove', () => removeCard(card)));
    return;
  }
  if (!f) return;
  if (card.left) card.left.textContent = leftText(f);
  if (f.status === 'exhausted') setStatus(card, 'Every download used');
  showServerThumb(card, f);
}

function removeCard(card) {
  const id = card.li.dataset.id; // none for an upload that did not finish
  if (id) {
    forget(id);
    cards.delete(id);
  }
  dropPreview(card);
  card.li.remove();
  $('no-uploads').hidden = $('uploads').children.length > 0;
}

async function deleteUpload(card, f) {
  try {
    const res = await fetch(`/files/${f.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': f.delete_token },
    });
    if (res.status === 204 || res.status === 404 || res.status === 410) return removeCard(card);
    const body = await res.json().catch(() => null);
    setStatus(card, `Could not delete: ${body ? body.error.message : res.status}`, true);
  } catch {
    setStatus(card, errorText(0), true);
  }
}

// ── uploading ──────────────────────────────────────────────────────────────

/** The options chosen on the page, as POST /upload's query and tus's Upload-Metadata take them. */
function uploadFields() {
  const max = Math.max(0, Math.floor(Number($('max-downloads').value) || 0));
  return { max_downloads: String(max), ttl: $('ttl').value };
}

/** Uploads a file: through tus when it is big (resumable), else in one request. */
function startUpload(file, card = uploadCard(file.name, file)) {
  if (file.size > config.max_upload_bytes) {
    setStatus(card, errorText(413), true);
    return;
  }
  const token = LINK ? null : localStorage.getItem(TOKEN_KEY);
  if (!LINK && config.upload_token_required && !token) return waitForToken(file, card);
  if (isResumable(file)) return startResumable(file, card, token);

  const xhr = new XMLHttpRequest();
  const query = new URLSearchParams({ ...(LINK ? { link: LINK } : {}), ...uploadFields() });
  xhr.open('POST', `/upload?${query}`);
  if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) showProgress(card, e.loaded, e.total);
  };
  xhr.onload = () => finishUpload(xhr, file, card);
  xhr.onerror = () => failUpload(card, file, 0, null);
  xhr.onabort = () => cancelled(card);
  card.actions.replaceChildren(button('Cancel', 'cancel', () => xhr.abort()));
  setStatus(card, 'Uploading…');
  const form = new FormData();
  form.append('file', file, file.name);
  xhr.send(form);
}

function finishUpload(xhr, file, card) {
  let body = null;
  try {
    body = JSON.parse(xhr.responseText);
  } catch {
    // not JSON: a proxy's error page, say
  }
  if (xhr.status === 201 && body) return uploaded(card, body);
  if (xhr.status === 401 && !LINK) {
    localStorage.removeItem(TOKEN_KEY);
    return waitForToken(file, card);
  }
  failUpload(card, file, xhr.status, body);
}

/** A finished upload, either way (its file object): kept in "my uploads", its card filled. */
function uploaded(card, body) {
  const f = {
    id: body.id,
    name: body.name,
    share_url: body.share_url,
    url: body.url,
    delete_token: body.delete_token,
    expires_at: body.expires_at,
    max_downloads: body.max_downloads,
    downloads_left: body.downloads_left,
  };
  remember(f);
  showDone(card, f, true);
  void watchThumbnail(card, f.id);
}

function failUpload(card, file, status, body, retry = () => startUpload(file, card)) {
  setStatus(card, errorText(status, body), true);
  const canRetry = status === 0 || status === 429 || status === 503 || status >= 500;
  card.actions.replaceChildren(
    ...(canRetry ? [button('Retry', 'retry', retry)] : []),
    button('Remove', 'remove', () => removeCard(card)),
  );
}

function cancelled(card) {
  setStatus(card, 'Cancelled');
  card.actions.replaceChildren(button('Remove', 'remove', () => removeCard(card)));
}

function waitForToken(file, card) {
  needToken.push({ file, card });
  setStatus(card, 'Waiting for the upload token…', true);
  $('token-form').hidden = false;
  $('token-input').focus();
}

function saveToken(e) {
  e.preventDefault();
  const token = $('token-input').value.trim();
  if (!token) return;
  localStorage.setItem(TOKEN_KEY, token);
  $('token-input').value = '';
  $('token-form').hidden = true;
  $('token-forget').hidden = false;
  for (const { file, card } of needToken.splice(0)) startUpload(file, card);
}

function addFiles(files) {
  showMessage('');
  for (const file of files) startUpload(file);
}

// ── resumable uploads (tus) ────────────────────────────────────────────────

/** Big files go through tus, when tus-js-client has loaded (without it, in one request like small ones). */
function isResumable(file) {
  return (
    file.size > config.resumable_threshold_bytes &&
    window.tus !== undefined &&
    window.tus.isSupported
  );
}

/** A HEAD the server could not answer (5xx), held back from tus-js-client as an error. */
class ServerBusy extends Error {
  constructor(status) {
    super(`HEAD answered ${status}`);
    this.status = status;
  }
}

/** The status behind a tus-js-client error: its response's, a held-back HEAD's, or 0 (no answer). */
function tusStatus(err) {
  if (err.originalResponse) return err.originalResponse.getStatus();
  return err.causingError instanceof ServerBusy ? err.causingError.status : 0;
}

function startResumable(file, card, token) {
  const job = { upload: null, card, stopped: false };
  const metadata = { filename: file.name, ...uploadFields() };
  // tus-js-client would send an empty value as "filetype " (a trailing space): leave it out.
  if (file.type) metadata.filetype = file.type;
  job.upload = new window.tus.Upload(file, {
    // The signed link counts at creation (the POST) only; PATCH and HEAD go to the upload's own URL.
    endpoint: `${config.resumable_path}/${LINK ? `?link=${encodeURIComponent(LINK)}` : ''}`,
    chunkSize: config.resumable_chunk_bytes,
    retryDelays: RETRY_DELAYS,
    metadata,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    // The upload's URL stays in localStorage until it succeeds: after a reload, the same file resumes.
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onShouldRetry: (err) => retryResumable(job, err),
    // tus-js-client answers any failed HEAD but 423 by starting a new upload (every byte again):
    // a server error is retried instead, like a failed PATCH.
    onAfterResponse: (req, res) => {
      if (req.getMethod() === 'HEAD' && res.getStatus() >= 500)
        throw new ServerBusy(res.getStatus());
    },
    onProgress: (sent, total) => {
      showProgress(card, sent, total);
      if (!job.stopped) setStatus(card, 'Uploading…');
    },
    onSuccess: () => finishResumable(job, file),
    onError: (err) => failResumable(job, file, err),
  });
  resumables.add(job);
  markResumable(card);
  card.actions.replaceChildren(button('Cancel', 'cancel', () => cancelResumable(job)));
  setStatus(card, 'Uploading…');
  job.upload
    .findPreviousUploads()
    .then((previous) => {
      const byAge = (a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime);
      const last = previous.sort(byAge)[0];
      if (!last) return;
      job.upload.resumeFromPreviousUpload(last);
      setStatus(card, 'Resuming…');
    })
    .catch(() => undefined) // no localStorage: a new upload
    .then(() => {
      // Cancelled meanwhile, or stopped by the 'offline' event (the 'online' one starts it).
      if (resumables.has(job) && !job.stopped) job.upload.start();
    });
}

/** The card of a tus upload says so: a network drop or a reload does not lose what was sent. */
function markResumable(card) {
  if (card.badge) return;
  card.badge = el('span', {
    class: 'badge',
    text: 'Resumable',
    title:
      'Sent in pieces: after a network drop it goes on by itself; after a reload, choose the same file again.',
  });
  card.title.append(' ', card.badge);
}

/**
 * tus-js-client asks after each failed request. Offline, no: the upload
 * stops, and the 'online' event starts it again at once (a retry would wait
 * out its delay, and tus-js-client gives up offline anyway).
 */
function retryResumable(job, err) {
  if (!navigator.onLine) return false;
  const status = tusStatus(err);
  // 409: the offset moved (a request was cut off); 423: another request still holds the upload.
  const retry = status === 0 || status === 409 || status === 423 || status >= 500;
  // Also asked for the DELETE of a cancelled upload: its card says Cancelled, and stays so.
  if (retry && resumables.has(job))
    setStatus(
      job.card,
      status === 0
        ? WAITING_TEXT
        : status >= 500
          ? `Server busy (${status}): retrying…`
          : 'Resuming…',
    );
  return retry;
}

function failResumable(job, file, err) {
  const status = tusStatus(err);
  if (status === 0 && !navigator.onLine) return waitForNetwork(job);
  resumables.delete(job);
  if (status === 401 && !LINK) {
    localStorage.removeItem(TOKEN_KEY);
    return waitForToken(file, job.card);
  }
  let body = null;
  try {
    body = JSON.parse(err.originalResponse.getBody());
  } catch {
    // no answer, or not JSON
  }
  // Retry makes a new tus upload that finds this one's URL in localStorage, and resumes it.
  failUpload(job.card, file, status, body);
}

function waitForNetwork(job) {
  job.stopped = true;
  setStatus(job.card, WAITING_TEXT);
}

/** Offline: each upload stops at once (a request under way could hang until a timeout). */
function pauseResumables() {
  for (const job of resumables) {
    void job.upload.abort();
    waitForNetwork(job);
  }
}

/** Back online: each stopped upload asks the server its offset (HEAD) and goes on from there. */
function resumeResumables() {
  for (const job of resumables) {
    if (!job.stopped) continue;
    job.stopped = false;
    setStatus(job.card, 'Resuming…');
    job.upload.start();
  }
}

/** Every byte is in: GET of the upload's URL answers the file object, as POST /upload does. */
async function finishResumable(job, file) {
  resumables.delete(job);
  const { card, upload } = job;
  setStatus(card, 'Finishing…');
  card.actions.replaceChildren();
  let status = 0;
  let body = null;
  for (const wait of [0, 1000, 3000, 5000]) {
    await sleep(wait);
    try {
      const res = await fetch(upload.url);
      status = res.status;
      body = await res.json().catch(() => null);
      if (res.ok && body) return uploaded(card, body);
      if (status < 500 && status !== 409) break;
    } catch {
      status = 0; // offline for a moment
    }
  }
  failUpload(card, file, status, body, () => finishResumable(job, file));
}

function cancelResumable(job) {
  resumables.delete(job);
  // true: DELETE the upload (the server drops its parts at once) and forget its URL here.
  job.upload.abort(true).catch(() => undefined);
  cancelled(job.card);
}

// ── refreshing ─────────────────────────────────────────────────────────────

function showStored() {
  for (const f of loadStored().reverse()) {
    showDone(uploadCard(f.name), f);
  }
}

async function refreshUploads() {
  for (const f of loadStored()) {
    const card = cards.get(f.id);
    try {
      const res = await fetch(`/files/${f.id}`);
      const body = res.ok ? await res.json() : null;
      if (body) updateStored(f.id, { downloads_left: body.downloads_left });
      if (card) refreshCard(card, res.status, body);
    } catch {
      return; // offline: try again at the next tick
    }
  }
}

function tickCountdowns() {
  for (const node of document.querySelectorAll('[data-expires]'))
    node.textContent = countdown(node.dataset.expires);
}

async function refreshCluster() {
  try {
    const res = await fetch('/api/cluster');
    const c = await res.json();
    $('cluster-summary').textContent =
      `${c.objects} objects · ${c.under_replicated} under-replicated · ` +
      `${c.repairs.queued} repairs queued · ${c.replication_factor} copies, quorum ${c.write_quorum}`;
    showLayout(c.layout);
    showRebalance(c.rebalance);
    $('nodes').replaceChildren(
      ...c.nodes.map((n) =>
        el(
          'li',
          { class: `node ${n.status} ${n.role ?? ''}`, 'data-node': n.id },
          el(
            'div',
            {},
            el('strong', { text: n.id }),
            ' ',
            el('span', { class: 'state', text: n.status }),
            n.role === 'draining' ? el('span', { class: 'hint', text: ' · draining' }) : '',
          ),
          el('div', {
            class: 'hint',
            text: `zone ${n.zone ?? '?'} · weight ${n.weight ?? '?'} · ${Math.round(n.share * 100)} % of new copies`,
          }),
          el('div', {
            class: 'hint',
            text:
              n.objects === null || n.objects === undefined
                ? n.last_error || 'no answer yet'
                : `${n.objects} objects · ${n.bytes === null ? '?' : humanBytes(n.bytes)} stored · ` +
                  `${n.free_bytes === null ? '?' : humanBytes(n.free_bytes)} free` +
                  (n.fill === null ? '' : ` (${(n.fill * 100).toFixed(1)} % full)`),
          }),
        ),
      ),
    );
  } catch {
    $('cluster-summary').textContent = 'Cannot reach the gateway.';
  }
}

/** The layout version, its zones and what keeps it from spreading every file's copies. */
function showLayout(layout) {
  $('layout-summary').textContent =
    `Layout v${layout.version}: ` +
    layout.zones.map((z) => `zone ${z.zone} (${z.nodes.join(', ')})`).join(' · ');
  $('layout-warnings').hidden = layout.warnings.length === 0;
  $('layout-warnings').textContent = layout.warnings.join(' ');
}

/** The newest rebalance pass: shown while it runs or left work, hidden once done. */
function showRebalance(r) {
  const show = r !== null && r.state !== 'done';
  $('rebalance').hidden = !show;
  if (!show) return;
  const rate = `${r.objects_per_second} replicas/s, ${humanBytes(r.bytes_per_second)}/s`;
  $('rebalance-summary').textContent =
    `Rebalance to layout v${r.layout_version} ${r.state === 'running' ? 'running' : 'to be retried'}: ` +
    `${r.scanned} of ${r.total} files checked · ${r.moved} replicas moved (${humanBytes(r.bytes)}) · ` +
    `${r.removed} removed · ${r.left} left · ${rate}`;
  $('rebalance-progress').value = r.total > 0 ? Math.min(1, r.scanned / r.total) : 0;
}

// ── upload link mode ───────────────────────────────────────────────────────

/** What the link allows, read from its payload (the server checks the signature, not us). */
function showLinkBanner() {
  try {
    const body = LINK.split('.')[0].replace(/-/g, '+').replace(/_/g, '/');
    const link = JSON.parse(atob(body));
    const until = new Date(link.exp * 1000).toLocaleString();
    showMessage(`Upload link: up to ${link.files} file(s), until ${until}.`);
    const fixed = link.options || {};
    if (fixed.max_downloads !== undefined) {
      $('max-downloads').value = String(fixed.max_downloads);
      $('max-downloads').disabled = true;
    }
    if (fixed.ttl !== undefined) $('ttl').disabled = true;
  } catch {
    showMessage('This upload link looks damaged.');
  }
}

// ── start ──────────────────────────────────────────────────────────────────

function wireDrop() {
  const drop = $('drop');
  $('file-input').addEventListener('change', (e) => {
    addFiles([...e.target.files]);
    e.target.value = '';
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    addFiles([...e.dataTransfer.files]);
  });
}

function wireConnectivity() {
  const set = () => ($('offline').hidden = navigator.onLine);
  window.addEventListener('online', set);
  window.addEventListener('offline', set);
  window.addEventListener('online', resumeResumables);
  window.addEventListener('offline', pauseResumables);
  set();
}

async function start() {
  wireDrop();
  wireConnectivity();
  $('token-form').addEventListener('submit', saveToken);
  $('token-forget').addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    $('token-forget').hidden = true;
  });
  try {
    config = await (await fetch('/api/config')).json();
    $('max-downloads').value = String(config.default_max_downloads);
  } catch {
    showMessage('Cannot reach the server.');
  }
  $('token-forget').hidden = LINK !== null || !localStorage.getItem(TOKEN_KEY);
  if (LINK) showLinkBanner();
  showStored();
  void refreshUploads();
  void refreshCluster();
  setInterval(tickCountdowns, 1000);
  setInterval(refreshUploads, 5000);
  setInterval(refreshCluster, 2000);
}

document.addEventListener('DOMContentLoaded', start);

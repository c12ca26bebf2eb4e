// Trove's browser page: uploads with real progress, "my uploads" kept in
// localStorage (with their delete tokens), and the cluster's health.
// Plain DOM, no build step; every text from the server goes in as textContent.
'use strict';

const TOKEN_KEY = 'trove.uploadToken';
const UPLOADS_KEY = 'trove.uploads';
const $ = (id) => document.getElementById(id);
/** On /u/<token> (a signed upload link), uploads go through that link: no upload token needed. */
const LINK = location.pathname.startsWith('/u/') ? location.pathname.slice(3) : null;

let config = { upload_token_required: false, max_upload_bytes: Infinity };
/** Uploads waiting for a token (answered 401, or not sent yet). */
const needToken = [];
/** The card of each finished upload on the page, by id. */
const cards = new Map();

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

function uploadCard(name) {
  const thumb = el('img', { class: 'thumb', alt: '' });
  const progress = el('progress', { max: '100', value: '0' });
  const percent = el('span', { class: 'percent', text: '0%' });
  const status = el('div', { class: 'status', text: 'Waiting…' });
  const actions = el('div', { class: 'row actions' });
  const details = el('div', { class: 'details' });
  const body = el('div', {}, el('div', { class: 'name', text: name }), progress, percent, status);
  body.append(actions, details);
  const li = el('li', { class: 'upload' }, thumb, body);
  $('uploads').prepend(li);
  $('no-uploads').hidden = true;
  return { li, thumb, progress, percent, status, actions, details };
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
  if (f.processing && f.processing.state === 'done' && !card.thumb.src)
    card.thumb.src = `/files/${f.id}/thumbnail`;
}

function removeCard(card) {
  forget(card.li.dataset.id);
  cards.delete(card.li.dataset.id);
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

function uploadOptions() {
  const max = Math.max(0, Math.floor(Number($('max-downloads').value) || 0));
  return `max_downloads=${max}&ttl=${encodeURIComponent($('ttl').value)}`;
}

function startUpload(file, card = uploadCard(file.name)) {
  if (file.size > config.max_upload_bytes) {
    setStatus(card, errorText(413), true);
    return;
  }
  const token = LINK ? null : localStorage.getItem(TOKEN_KEY);
  if (!LINK && config.upload_token_required && !token) return waitForToken(file, card);

  const xhr = new XMLHttpRequest();
  const link = LINK ? `link=${encodeURIComponent(LINK)}&` : '';
  xhr.open('POST', `/upload?${link}${uploadOptions()}`);
  if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    const pct = Math.round((e.loaded / e.total) * 100);
    card.progress.value = pct;
    card.percent.textContent = `${pct}%`;
  };
  xhr.onload = () => finishUpload(xhr, file, card);
  xhr.onerror = () => failUpload(card, file, 0, null);
  xhr.onabort = () => {
    setStatus(card, 'Cancelled');
    card.actions.replaceChildren(button('Remove', 'remove', () => card.li.remove()));
  };
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
  if (xhr.status === 201 && body) {
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
    return;
  }
  if (xhr.status === 401 && !LINK) {
    localStorage.removeItem(TOKEN_KEY);
    return waitForToken(file, card);
  }
  failUpload(card, file, xhr.status, body);
}

function failUpload(card, file, status, body) {
  setStatus(card, errorText(status, body), true);
  const retry = status === 0 || status === 429 || status === 503 || status >= 500;
  card.actions.replaceChildren(
    ...(retry ? [button('Retry', 'retry', () => startUpload(file, card))] : []),
    button('Remove', 'remove', () => card.li.remove()),
  );
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

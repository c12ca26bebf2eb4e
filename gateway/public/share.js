// The share page: a live expiry countdown, and the count refreshed after the
// Download button was used (the page itself never takes a download).
'use strict';

function countdown(expiresAt) {
  const s = Math.floor((Date.parse(expiresAt) - Date.now()) / 1000);
  if (s <= 0) return 'expired';
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (x) => String(x).padStart(2, '0');
  return `in ${d ? `${d}d ` : ''}${h ? `${h}h ` : ''}${pad(m)}m ${pad(s % 60)}s`;
}

async function refreshCount(id, left, button) {
  const res = await fetch(`/files/${encodeURIComponent(id)}`);
  if (!res.ok) return;
  const f = await res.json();
  if (f.downloads_left === null) return;
  left.dataset.left = String(f.downloads_left);
  left.textContent = `${f.downloads_left} of ${f.max_downloads} download${f.max_downloads === 1 ? '' : 's'} left`;
  if (f.downloads_left === 0 || f.status !== 'active') {
    button.setAttribute('aria-disabled', 'true');
    button.removeAttribute('href');
  }
}

document.addEventListener('DOMContentLoaded', () => {
  const main = document.querySelector('main.share[data-id]');
  if (!main) return;
  const time = main.querySelector('time.expires');
  const left = main.querySelector('.downloads-left');
  const button = main.querySelector('a.download');
  const tick = () => (time.textContent = countdown(time.getAttribute('datetime')));
  tick();
  setInterval(tick, 1000);
  // The download starts with the click; its count is taken before the first byte, so a short wait is enough.
  button.addEventListener('click', () => {
    for (const ms of [500, 1500, 4000])
      setTimeout(() => void refreshCount(main.dataset.id, left, button), ms);
  });
});

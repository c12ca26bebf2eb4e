/**
 * File names on the way in (sanitised for storage and display) and on the
 * way out (Content-Disposition that survives any UTF-8 name, RFC 6266/8187).
 */

/** Keeps the last path segment, drops control characters, trims to 255 UTF-8 bytes. */
export function cleanFileName(raw: string | undefined): string {
  const base = (raw ?? '').split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  let name = base.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  while (Buffer.byteLength(name) > 255) name = [...name].slice(0, -1).join('');
  return name === '' || name === '.' || name === '..' ? 'file' : name;
}

/** `inline` or `attachment` with an ASCII fallback name and the exact UTF-8 one. */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

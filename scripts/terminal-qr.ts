/** The QR code `npm start` prints, so a phone on the same network opens the page by pointing its camera. */
import QRCode from 'qrcode';

/** PUBLIC_URL when set (that is what people should open), else the first LAN address, else localhost. */
export function phoneUrl(urls: string[], publicUrl: string | undefined): string | undefined {
  return publicUrl ?? urls.find((u) => !u.startsWith('http://localhost')) ?? urls[0];
}

/** The QR code of that URL in terminal block characters, with a caption; empty when there is none. */
export async function phoneQr(urls: string[], publicUrl: string | undefined): Promise<string> {
  const url = phoneUrl(urls, publicUrl);
  if (!url) return '';
  const code = await QRCode.toString(url, { type: 'terminal', small: true });
  return `${code}  ↑ scan to open ${url} on a phone\n`;
}

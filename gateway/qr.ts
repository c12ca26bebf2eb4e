/**
 * GET /qr?text=…: a QR code as SVG, made here (no third-party service ever
 * sees a share link). The page shows one per upload.
 */
import type { Context } from 'hono';
import QRCode from 'qrcode';
import { BadRequestError } from '../shared/errors.js';

/** Share links are ~60 characters; anything far longer is not what this endpoint is for. */
const MAX_TEXT = 1024;

export async function qrSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
}

export async function handleQr(c: Context) {
  const text = c.req.query('text');
  if (!text) throw new BadRequestError('give the text to encode: /qr?text=…', 'INVALID_OPTION');
  if (text.length > MAX_TEXT)
    throw new BadRequestError(`text is longer than ${MAX_TEXT} characters`, 'INVALID_OPTION');
  return c.body(await qrSvg(text), 200, {
    'content-type': 'image/svg+xml',
    'cache-control': 'public, max-age=86400',
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
}

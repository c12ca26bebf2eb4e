/**
 * GET /qr?text=…: a QR code as SVG, made here (no third-party service ever
 * sees a share link). The page shows one per upload.
 */
import type { Context } from 'hono';
import QRCode from 'qrcode';
import { z } from 'zod';
import { BadRequestError } from '../../shared/errors.js';

/** Share links are ~60 characters; anything far longer is not what this endpoint is for. */
const MAX_TEXT = 1024;

/** `?text=` of GET /qr. */
export const QR_TEXT = z.string().min(1).max(MAX_TEXT).meta({
  description: 'The text to encode, such as a share link.',
  example: 'http://192.168.1.20:8080/s/JrJ3b1Z0RkqY0cY3Gq5mNw',
});

export async function qrSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
}

export async function handleQr(c: Context) {
  const text = QR_TEXT.safeParse(c.req.query('text'));
  if (!text.success) {
    const given = c.req.query('text');
    throw new BadRequestError(
      given ? `text is longer than ${MAX_TEXT} characters` : 'give the text to encode: /qr?text=…',
      'INVALID_OPTION',
    );
  }
  return c.body(await qrSvg(text.data), 200, {
    'content-type': 'image/svg+xml',
    'cache-control': 'public, max-age=86400',
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
}

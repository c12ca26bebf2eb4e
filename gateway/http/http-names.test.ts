import { describe, expect, it } from 'vitest';
import { cleanFileName, contentDisposition } from './http-names.js';

describe('cleanFileName', () => {
  it('keeps the last path segment and drops control characters', () => {
    expect(cleanFileName('C:\\Users\\me\\photo.jpg')).toBe('photo.jpg');
    expect(cleanFileName('../../etc/passwd')).toBe('passwd');
    expect(cleanFileName('a\u0000b\nc.png')).toBe('abc.png');
    expect(cleanFileName('..')).toBe('file');
    expect(cleanFileName(undefined)).toBe('file');
  });

  it('trims to 255 bytes without splitting a character', () => {
    const name = cleanFileName('é'.repeat(200));
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    expect(name).toBe('é'.repeat(127));
  });
});

describe('contentDisposition', () => {
  it('gives an ASCII fallback and the exact UTF-8 name', () => {
    expect(contentDisposition('inline', 'café "1".jpg')).toBe(
      `inline; filename="caf_ _1_.jpg"; filename*=UTF-8''caf%C3%A9%20%221%22.jpg`,
    );
    expect(contentDisposition('attachment', "it's (1).png")).toBe(
      `attachment; filename="it's (1).png"; filename*=UTF-8''it%27s%20%281%29.png`,
    );
  });
});

import { describe, expect, it } from 'vitest';
import { phoneQr, phoneUrl } from './terminal-qr.js';

describe('phoneUrl', () => {
  it('prefers PUBLIC_URL, then the first LAN address, then localhost', () => {
    const urls = ['http://localhost:8080', 'http://192.168.1.20:8080', 'http://10.0.0.5:8080'];
    expect(phoneUrl(urls, 'https://x.ngrok.app')).toBe('https://x.ngrok.app');
    expect(phoneUrl(urls, undefined)).toBe('http://192.168.1.20:8080');
    expect(phoneUrl(['http://localhost:8080'], undefined)).toBe('http://localhost:8080');
    expect(phoneUrl([], undefined)).toBeUndefined();
  });

  it('renders a QR code of block characters with its URL', async () => {
    const text = await phoneQr(['http://localhost:8080', 'http://192.168.1.20:8080'], undefined);
    expect(text).toMatch(/[▀▄█]/);
    expect(text).toContain('scan to open http://192.168.1.20:8080');
  });
});

import { describe, expect, it } from 'vitest';
import { baseUrl } from './public-url.js';

const headers = (h: Record<string, string>) => (name: string) => h[name];

describe('baseUrl', () => {
  it('prefers PUBLIC_URL', () => {
    expect(
      baseUrl(headers({ host: 'x:1' }), 'http://x:1/upload', {
        publicUrl: 'https://t.example',
        trustProxy: true,
      }),
    ).toBe('https://t.example');
  });

  it('uses the Host header', () => {
    expect(
      baseUrl(headers({ host: '192.168.1.20:8080' }), 'http://localhost/upload', {
        publicUrl: undefined,
        trustProxy: false,
      }),
    ).toBe('http://192.168.1.20:8080');
  });

  it('honours forwarded headers only when trusted', () => {
    const h = headers({
      host: '127.0.0.1:8080',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'abc.ngrok.app',
    });
    expect(baseUrl(h, 'http://127.0.0.1:8080/', { publicUrl: undefined, trustProxy: true })).toBe(
      'https://abc.ngrok.app',
    );
    expect(baseUrl(h, 'http://127.0.0.1:8080/', { publicUrl: undefined, trustProxy: false })).toBe(
      'http://127.0.0.1:8080',
    );
  });

  it('ignores a Host header that is not a host', () => {
    expect(
      baseUrl(headers({ host: 'evil.com/<script>' }), 'http://127.0.0.1:8080/', {
        publicUrl: undefined,
        trustProxy: false,
      }),
    ).toBe('http://127.0.0.1:8080');
  });
});

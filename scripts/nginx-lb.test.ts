import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NGINX_CONF, renderNginxConf } from './nginx-lb.js';

const template = readFileSync(NGINX_CONF, 'utf8');

describe('renderNginxConf', () => {
  it('swaps the compose upstreams and listen port for local ones, keeping the rest', () => {
    const out = renderNginxConf(template, {
      listen: '127.0.0.1:18080',
      gateways: ['127.0.0.1:18081', '127.0.0.1:18082', '127.0.0.1:18083'],
    });
    expect(out.replace(/#.*$/gm, '')).not.toMatch(/gateway\d:8080/);
    expect(out).toMatch(/^\s*listen 127\.0\.0\.1:18080;$/m);
    const servers = [...out.matchAll(/^\s*server (127\.0\.0\.1:\d+)( [^;]*);$/gm)];
    expect(servers.map((m) => m[1])).toEqual([
      '127.0.0.1:18081',
      '127.0.0.1:18082',
      '127.0.0.1:18083',
    ]);
    // Server parameters (max_fails…) survive; everything else is unchanged.
    expect(servers[0]![2]).toMatch(/max_fails=/);
    expect(out).toContain('proxy_next_upstream error timeout http_502 http_503;');
    expect(out.split('\n').length).toBe(template.split('\n').length + 1);
  });

  it('refuses a template it cannot fill in', () => {
    expect(() => renderNginxConf('events {}', { listen: '80', gateways: ['a:1'] })).toThrow(
      /gatewayN/,
    );
  });
});

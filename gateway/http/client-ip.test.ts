import { describe, expect, it } from 'vitest';
import { clientAddress, parseAddress, trustProxyHazard } from './client-ip.js';

describe('parseAddress', () => {
  it('keys IPv4 by the address and knows loopback', () => {
    expect(parseAddress('203.0.113.7')).toEqual({ key: '203.0.113.7', loopback: false });
    expect(parseAddress('127.0.0.1')).toEqual({ key: '127.0.0.1', loopback: true });
    expect(parseAddress('127.8.9.10')?.loopback).toBe(true);
  });

  it('turns IPv4-mapped IPv6 into IPv4, in either spelling', () => {
    expect(parseAddress('::ffff:203.0.113.7')).toEqual({ key: '203.0.113.7', loopback: false });
    expect(parseAddress('::FFFF:cb00:7107')).toEqual({ key: '203.0.113.7', loopback: false });
    expect(parseAddress('::ffff:127.0.0.1')).toEqual({ key: '127.0.0.1', loopback: true });
  });

  it('keys IPv6 by its /64, however the address is written', () => {
    const a = parseAddress('2001:db8:0:1::1');
    expect(a).toEqual({ key: '2001:db8:0:1::/64', loopback: false });
    expect(parseAddress('2001:0DB8:0000:0001:ffff:1:2:3')).toEqual(a);
    expect(parseAddress('2001:db8::1:0:0:0:42')).toEqual(a);
    expect(parseAddress('2001:db8:0:2::1')?.key).toBe('2001:db8:0:2::/64');
    expect(parseAddress('::1')).toEqual({ key: '0:0:0:0::/64', loopback: true });
    // Another address of that /64 is not the loopback address.
    expect(parseAddress('::2')?.loopback).toBe(false);
  });

  it('accepts ports, brackets and zones as proxies write them', () => {
    expect(parseAddress('203.0.113.7:51234')?.key).toBe('203.0.113.7');
    expect(parseAddress('[2001:db8:0:1::9]:443')?.key).toBe('2001:db8:0:1::/64');
    expect(parseAddress('[::ffff:203.0.113.7]')?.key).toBe('203.0.113.7');
    expect(parseAddress('fe80::1%eth0')?.key).toBe('fe80:0:0:0::/64');
    expect(parseAddress(' 203.0.113.7 ')?.key).toBe('203.0.113.7');
  });

  it('refuses what is not an address', () => {
    for (const bad of ['', 'unknown', '203.0.113', '203.0.113.256', '01.2.3.4', 'a::b::c', '[::1'])
      expect(parseAddress(bad), bad).toBeUndefined();
  });
});

describe('clientAddress', () => {
  const xff = '198.51.100.1, 203.0.113.7';

  it('is the peer when proxies are not trusted, whatever X-Forwarded-For says', () => {
    expect(clientAddress('127.0.0.1', xff, false)).toEqual({ key: '127.0.0.1', loopback: true });
    expect(clientAddress('::ffff:192.0.2.5', xff, false)?.key).toBe('192.0.2.5');
  });

  it('is the right-most forwarded entry with TRUST_PROXY: a forged left part changes nothing', () => {
    expect(clientAddress('127.0.0.1', xff, true)?.key).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', '203.0.113.7', true)?.key).toBe('203.0.113.7');
  });

  it('skips loopback hops (proxies on this machine), and a client cannot hide behind one', () => {
    // ngrok agent → local nginx → gateway: nginx appends the agent's 127.0.0.1.
    expect(clientAddress('127.0.0.1', '203.0.113.7, 127.0.0.1', true)?.key).toBe('203.0.113.7');
    // A client sending "X-Forwarded-For: 127.0.0.1" gets its real address appended after it.
    expect(clientAddress('127.0.0.1', '127.0.0.1, 203.0.113.7', true)?.key).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', '127.0.0.1, ::1', true)?.loopback).toBe(true);
  });

  it('falls back to the peer when the trusted entry is not an address, or there is none', () => {
    expect(clientAddress('192.0.2.5', '203.0.113.7, garbage', true)?.key).toBe('192.0.2.5');
    expect(clientAddress('192.0.2.5', undefined, true)?.key).toBe('192.0.2.5');
    expect(clientAddress('192.0.2.5', '', true)?.key).toBe('192.0.2.5');
  });

  it('is unknown without a peer address', () => {
    expect(clientAddress(undefined, xff, true)).toBeUndefined();
  });
});

describe('trustProxyHazard', () => {
  it('warns of TRUST_PROXY on an address other machines reach', () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.20'])
      expect(trustProxyHazard(host, true), host).toContain('TRUST_PROXY');
  });

  it('is quiet on loopback, or without TRUST_PROXY', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost'])
      expect(trustProxyHazard(host, true), host).toBeUndefined();
    expect(trustProxyHazard('0.0.0.0', false)).toBeUndefined();
  });
});

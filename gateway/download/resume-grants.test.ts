import type { Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../shared/logger.js';
import { fakeRedis } from '../../test/gateway-fakes.js';
import {
  GRANT_COOKIE,
  ResumeGrants,
  cookieValues,
  grantCookie,
  grantKey,
  isResume,
  resumeGrantKey,
  signGrant,
  verifyGrant,
} from './resume-grants.js';

const key = resumeGrantKey('a-cluster-secret-of-sixteen+');
const ID = 'AAAAAAAAAAAAAAAAAAAAAA';
const NOW = Date.UTC(2026, 0, 1);
const exp = NOW / 1000 + 1800;

describe('isResume', () => {
  it('is a range past byte 0, or any range under an If-Range (that matched)', () => {
    expect(isResume({ start: 1, end: 99 }, false)).toBe(true);
    expect(isResume({ start: 90, end: 99 }, false)).toBe(true); // bytes=-10 of 100 too
    expect(isResume({ start: 0, end: 99 }, true)).toBe(true);
    expect(isResume({ start: 0, end: 99 }, false)).toBe(false); // bytes=0-: a fresh download
    expect(isResume({ start: 0, end: 0 }, false)).toBe(false);
    // No range (none asked, or an If-Range that did not match): the whole file, a fresh download.
    expect(isResume(undefined, false)).toBe(false);
    expect(isResume(undefined, true)).toBe(false);
  });
});

describe('grant cookies', () => {
  it('verify for their file until their expiry, and only then', () => {
    const value = signGrant(key, ID, exp);
    expect(value).toMatch(/^\d+\.[A-Za-z0-9_-]{43}$/);
    expect(verifyGrant(key, ID, value, NOW)).toBe(true);
    expect(verifyGrant(key, ID, value, exp * 1000 - 1)).toBe(true);
    expect(verifyGrant(key, ID, value, exp * 1000)).toBe(false);
    expect(verifyGrant(key, 'BBBBBBBBBBBBBBBBBBBBBB', value, NOW)).toBe(false);
    expect(verifyGrant(resumeGrantKey('another-cluster-secret!!'), ID, value, NOW)).toBe(false);
  });

  it('refuse a moved expiry, an altered signature and garbage', () => {
    const value = signGrant(key, ID, exp);
    const [, sig] = value.split('.');
    expect(verifyGrant(key, ID, `${exp + 3600}.${sig}`, NOW)).toBe(false);
    const flipped = sig!.startsWith('A') ? `B${sig!.slice(1)}` : `A${sig!.slice(1)}`;
    expect(verifyGrant(key, ID, `${exp}.${flipped}`, NOW)).toBe(false);
    for (const junk of ['', '.', `${exp}`, `${exp}.`, `x.${sig}`, `${exp}.${sig}x`, `${value};`])
      expect(verifyGrant(key, ID, junk, NOW)).toBe(false);
  });

  it('are set for the file path alone, HttpOnly and SameSite=Lax, for the TTL', () => {
    expect(grantCookie(key, ID, 1800, NOW)).toBe(
      `trove_grant=${signGrant(key, ID, exp)}; Max-Age=1800; Path=/download/${ID}; HttpOnly; SameSite=Lax`,
    );
  });

  it('are set under the path of PUBLIC_URL when Trove is served below one', () => {
    const path = (url?: string) => /Path=([^;]+)/.exec(grantCookie(key, ID, 60, NOW, url))![1];
    expect(path('https://example.com/trove')).toBe(`/trove/download/${ID}`);
    expect(path('https://example.com/a/b/')).toBe(`/a/b/download/${ID}`);
    expect(path('https://abc.ngrok.app')).toBe(`/download/${ID}`);
    expect(path(undefined)).toBe(`/download/${ID}`);
  });

  it('are read among other cookies, every one of the name', () => {
    expect(cookieValues(undefined, GRANT_COOKIE)).toEqual([]);
    expect(cookieValues('a=1; trove_grant=x; b=2;trove_grant=y', GRANT_COOKIE)).toEqual(['x', 'y']);
    expect(cookieValues('not_trove_grant=z', GRANT_COOKIE)).toEqual([]);
  });
});

describe('ResumeGrants', () => {
  function grants(redis: Redis = fakeRedis(), ttlSeconds = 1800) {
    const log = createLogger('test', 'silent');
    const warn = vi.spyOn(log, 'warn');
    const g = new ResumeGrants({
      redis,
      key,
      ttlSeconds,
      clusterName: 'tc',
      trustProxy: false,
      log,
    });
    return { g, warn, redis };
  }

  it('finds a grant by a valid cookie without asking Redis, else by the address in Redis', async () => {
    const redis = fakeRedis();
    const get = vi.spyOn(redis, 'get');
    const { g } = grants(redis);
    const cookie = `other=1; trove_grant=${signGrant(key, ID, exp)}`;
    expect(await g.holder(ID, cookie, '192.0.2.1', NOW)).toBe('cookie');
    expect(get).not.toHaveBeenCalled();

    expect(await g.holder(ID, undefined, '192.0.2.1', NOW)).toBeUndefined();
    await g.remember(ID, '192.0.2.1');
    expect(await redis.get(grantKey('tc', ID, '192.0.2.1'))).toBe('1');
    expect(await g.holder(ID, undefined, '192.0.2.1', NOW)).toBe('address');
    expect(await g.holder(ID, 'trove_grant=forged', '192.0.2.1', NOW)).toBe('address');
    expect(await g.holder(ID, undefined, '192.0.2.2', NOW)).toBeUndefined();
    expect(await g.holder('BBBBBBBBBBBBBBBBBBBBBB', undefined, '192.0.2.1', NOW)).toBeUndefined();
    expect(await g.holder(ID, undefined, undefined, NOW)).toBeUndefined();
  });

  it('records the address grant with the TTL', async () => {
    const redis = fakeRedis();
    const set = vi.spyOn(redis, 'set');
    const { g } = grants(redis, 600);
    await g.remember(ID, '2001:db8:0:1::/64');
    expect(set).toHaveBeenCalledWith(`tc:grant:${ID}:2001:db8:0:1::/64`, '1', 'EX', 600);
  });

  it('answers "no grant" and logs when Redis fails, is away or is slow: the resume counts', async () => {
    const failing = Object.assign(fakeRedis(), {
      get: async () => {
        throw new Error('connection lost');
      },
    });
    const away = Object.assign(fakeRedis(), { status: 'reconnecting' });
    const slow = Object.assign(fakeRedis(), { get: () => new Promise(() => undefined) });
    for (const redis of [failing, away, slow] as Redis[]) {
      const { g, warn } = grants(redis);
      expect(await g.holder(ID, undefined, '192.0.2.1', NOW)).toBeUndefined();
      expect(warn).toHaveBeenCalledWith(
        expect.objectContaining({ id: ID, client: '192.0.2.1' }),
        'resume grant lookup failed: the resume counts as a download',
      );
    }
    // A valid cookie needs no Redis.
    const { g } = grants(away as Redis);
    expect(await g.holder(ID, `trove_grant=${signGrant(key, ID, exp)}`, '192.0.2.1', NOW)).toBe(
      'cookie',
    );
  });

  it('logs a grant it could not record, and never throws', async () => {
    const failing = Object.assign(fakeRedis(), {
      set: async () => {
        throw new Error('OOM');
      },
    });
    const { g, warn } = grants(failing as Redis);
    await expect(g.remember(ID, '192.0.2.1')).resolves.toBeUndefined();
    expect(warn).toHaveBeenCalledOnce();
  });
});

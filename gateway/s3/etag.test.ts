import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Md5Stage, etagMd5, multipartEtag, singlePartEtag } from './etag.js';

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

describe('Md5Stage', () => {
  it('passes the bytes on unchanged and takes their MD5', async () => {
    const chunks = [randomBytes(70_000), randomBytes(1), randomBytes(65_536)];
    const stage = new Md5Stage();
    const out: Buffer[] = [];
    await pipeline(
      Readable.from(chunks),
      stage,
      new Writable({
        write(chunk: Buffer, _enc, done) {
          out.push(chunk);
          done();
        },
      }),
    );
    const whole = Buffer.concat(chunks);
    expect(Buffer.concat(out).equals(whole)).toBe(true);
    expect(stage.md5()).toBe(md5(whole));
    expect(singlePartEtag(stage.md5())).toBe(`"${md5(whole)}"`);
  });
});

describe('multipartEtag', () => {
  it('is the MD5 of the parts’ binary MD5s, then -N', () => {
    const parts = [randomBytes(1000), randomBytes(2000), randomBytes(10)];
    const inner = Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()));
    expect(multipartEtag(parts.map(md5))).toBe(`"${md5(inner)}-3"`);
  });
});

describe('etagMd5', () => {
  it('takes quoted or bare, any case', () => {
    const hex = md5(Buffer.from('x'));
    expect(etagMd5(`"${hex}"`)).toBe(hex);
    expect(etagMd5(hex.toUpperCase())).toBe(hex);
  });

  it('refuses what is not an MD5', () => {
    expect(etagMd5('"abc"')).toBeUndefined();
    expect(etagMd5(`"${'0'.repeat(32)}-2"`)).toBeUndefined();
  });
});

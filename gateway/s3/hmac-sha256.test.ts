import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HmacSha256 } from './hmac-sha256.js';

describe('HmacSha256', () => {
  // RFC 4231, test cases 1, 2, 6 and 7: a short key, a short key and a key longer than a block.
  it.each([
    [
      '0b'.repeat(20),
      Buffer.from('Hi There'),
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    ],
    [
      Buffer.from('Jefe').toString('hex'),
      Buffer.from('what do ya want for nothing?'),
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    ],
    [
      'aa'.repeat(131),
      Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'),
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    ],
    [
      'aa'.repeat(131),
      Buffer.from(
        'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
      ),
      '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
    ],
  ])('gives RFC 4231 HMAC-SHA-256 under key %s', (keyHex, message, expected) => {
    expect(new HmacSha256(Buffer.from(keyHex, 'hex')).digest(message).toString('hex')).toBe(
      expected,
    );
  });

  it('agrees with createHmac for keys of every length around the block and UTF-8 strings', () => {
    for (const keyBytes of [0, 1, 32, 63, 64, 65, 200]) {
      const key = randomBytes(keyBytes);
      const hmac = new HmacSha256(key);
      for (const message of ['', 'AWS4-HMAC-SHA256\n20261206T120000Z', 'clé é 🙂', 'x'.repeat(300)])
        expect(hmac.digest(message)).toEqual(createHmac('sha256', key).update(message).digest());
      const bytes = randomBytes(100);
      expect(hmac.digest(bytes)).toEqual(createHmac('sha256', key).update(bytes).digest());
    }
  });

  it('gives the same HMAC for a message again (the pads are not changed by a digest)', () => {
    const hmac = new HmacSha256(randomBytes(32));
    expect(hmac.digest('again')).toEqual(hmac.digest('again'));
  });
});

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
    expect(new HmacSha256(Buffer.from(keyHex, 'hex')).hex(message)).toBe(expected);
  });

  it('agrees with createHmac for keys of every length around the block, UTF-8 strings and bytes', () => {
    // Messages that fit the room after the pad, and longer ones (copied instead), in both forms.
    const strings = ['', 'AWS4-HMAC-SHA256\n20261206T120000Z', 'clé é 🙂', 'x'.repeat(341)];
    strings.push('x'.repeat(342), 'é'.repeat(400), '🙂'.repeat(300));
    for (const keyBytes of [0, 1, 32, 63, 64, 65, 200]) {
      const key = randomBytes(keyBytes);
      const hmac = new HmacSha256(key);
      const expected = (m: string | Buffer) => createHmac('sha256', key).update(m).digest('hex');
      for (const message of strings) expect(hmac.hex(message)).toBe(expected(message));
      for (const bytes of [
        randomBytes(100),
        randomBytes(1024),
        randomBytes(1025),
        randomBytes(5000),
      ])
        expect(hmac.hex(bytes)).toBe(expected(bytes));
    }
  });

  it('gives the same HMAC for a message after a longer one (nothing of a message stays behind)', () => {
    const key = randomBytes(32);
    const hmac = new HmacSha256(key);
    const once = hmac.hex('again');
    hmac.hex('a much longer message that fills more of the buffer than the next one');
    expect(hmac.hex('again')).toBe(once);
    expect(once).toBe(createHmac('sha256', key).update('again').digest('hex'));
  });
});

/**
 * HMAC-SHA256 (RFC 2104) under one key, for many messages: the signature
 * of every signed S3 request is one HMAC under its signing key.
 *
 * createHmac sets up an OpenSSL HMAC context on each call, and in the
 * running gateway that setup cost several times the hashing itself: the
 * crypto of an S3 GET took about 5 % of its busy time in a profile, 2.5 %
 * this way (docs/benchmarks.md, "S3 API"). With the key's two padded blocks
 * kept, an HMAC is two one-shot hashes, H(K ^ opad || H(K ^ ipad || m)),
 * which hmac-sha256.test.ts checks against createHmac and RFC 4231.
 */
import { hash } from 'node:crypto';

/** SHA-256's block size, in bytes: a longer key is hashed first, a shorter one padded with zeros. */
const BLOCK_BYTES = 64;

export class HmacSha256 {
  private readonly innerPad: Buffer;
  private readonly outerPad: Buffer;

  constructor(readonly key: Readonly<Buffer>) {
    const block = Buffer.alloc(BLOCK_BYTES);
    (key.length > BLOCK_BYTES ? hash('sha256', key, 'buffer') : key).copy(block);
    this.innerPad = Buffer.from(block.map((byte) => byte ^ 0x36));
    this.outerPad = Buffer.from(block.map((byte) => byte ^ 0x5c));
  }

  /** The HMAC of `message` (a string is taken as UTF-8, as createHmac's update takes it). */
  digest(message: string | Buffer): Buffer {
    const bytes = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
    const inner = hash('sha256', Buffer.concat([this.innerPad, bytes]), 'buffer');
    return hash('sha256', Buffer.concat([this.outerPad, inner]), 'buffer');
  }
}

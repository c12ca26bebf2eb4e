/**
 * HMAC-SHA256 (RFC 2104) under one key, for many messages: the signature
 * of every signed S3 request is one HMAC under its signing key.
 *
 * createHmac sets up an OpenSSL HMAC context on each call, and in the
 * running gateway that setup cost several times the hashing itself. With
 * the key's two padded blocks kept, an HMAC is two one-shot hashes,
 * H(K ^ opad || H(K ^ ipad || m)), which hmac-sha256.test.ts checks against
 * createHmac and RFC 4231. Both hashes read their input from buffers kept
 * with the key, the message and the inner hash written in place after the
 * pads, and give strings: on Node 20 a one-shot hash's Buffer output costs
 * about three times its hex or binary (latin1) output, and a Buffer.concat
 * per hash adds half as much again (docs/benchmarks.md, "S3 API").
 */
import { hash } from 'node:crypto';

/** SHA-256's block size, in bytes: a longer key is hashed first, a shorter one padded with zeros. */
const BLOCK_BYTES = 64;
const HASH_BYTES = 32;
/** Room for a message after the inner pad: a string to sign is about 150 bytes; a longer message is copied. */
const MESSAGE_ROOM = 1024;

export class HmacSha256 {
  /** K ^ ipad, then room for the message: the inner hash's input. */
  private readonly inner = Buffer.alloc(BLOCK_BYTES + MESSAGE_ROOM);
  /** K ^ opad, then the inner hash: the outer hash's input. */
  private readonly outer = Buffer.alloc(BLOCK_BYTES + HASH_BYTES);

  constructor(readonly key: Readonly<Buffer>) {
    const block = Buffer.alloc(BLOCK_BYTES);
    (key.length > BLOCK_BYTES ? hash('sha256', key, 'buffer') : key).copy(block);
    for (let i = 0; i < BLOCK_BYTES; i++) {
      this.inner[i] = block[i]! ^ 0x36;
      this.outer[i] = block[i]! ^ 0x5c;
    }
  }

  /**
   * The HMAC of `message`, in lower-case hex (a string is taken as UTF-8, as
   * createHmac's update takes it). Synchronous from start to end, so the
   * buffers written in place are never shared by two calls.
   */
  hex(message: string | Buffer): string {
    // 'binary' is latin1: one char per byte, written back as those bytes.
    const inner = hash('sha256', this.innerInput(message), 'binary');
    this.outer.write(inner, BLOCK_BYTES, 'binary');
    return hash('sha256', this.outer, 'hex');
  }

  /** K ^ ipad || message: in place when the message surely fits (UTF-8 takes at most 3 bytes per UTF-16 unit). */
  private innerInput(message: string | Buffer): Buffer {
    if (typeof message === 'string') {
      if (message.length * 3 > MESSAGE_ROOM)
        return Buffer.concat([this.innerPad(), Buffer.from(message, 'utf8')]);
      const length = this.inner.write(message, BLOCK_BYTES, 'utf8');
      return this.inner.subarray(0, BLOCK_BYTES + length);
    }
    if (message.length > MESSAGE_ROOM) return Buffer.concat([this.innerPad(), message]);
    message.copy(this.inner, BLOCK_BYTES);
    return this.inner.subarray(0, BLOCK_BYTES + message.length);
  }

  private innerPad(): Buffer {
    return this.inner.subarray(0, BLOCK_BYTES);
  }
}

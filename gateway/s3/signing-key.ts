/**
 * SigV4 signing keys: HMAC("AWS4" + secret, date) → region → service →
 * "aws4_request". Every request needs one, and a client's key changes only
 * once a day, so derived keys are memoised, each ready to sign with.
 */
import { createHmac } from 'node:crypto';
import { HmacSha256 } from './hmac-sha256.js';

export const hmac = (key: string | Buffer, data: string): Buffer =>
  createHmac('sha256', key).update(data, 'utf8').digest();

/** The signing key of `secret` for scope `date` (YYYYMMDD) / `region` / `service`. */
export function deriveSigningKey(
  secret: string,
  date: string,
  region: string,
  service: string,
): Buffer {
  const kDate = hmac(`AWS4${secret}`, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

/**
 * A bounded least-recently-used memo of derived keys, each as the HMAC it
 * signs with (its bytes in `.key`). A key is a function of its inputs alone,
 * so one cache may serve every verifier of the process.
 */
export class SigningKeyCache {
  private readonly keys = new Map<string, HmacSha256>();

  constructor(private readonly capacity = 256) {}

  get(secret: string, date: string, region: string, service: string): HmacSha256 {
    // NUL cannot occur in a date, region or service name, so the fields cannot run into each other.
    const id = `${date}\0${region}\0${service}\0${secret}`;
    let signer = this.keys.get(id);
    if (signer) {
      this.keys.delete(id);
    } else {
      signer = new HmacSha256(deriveSigningKey(secret, date, region, service));
      if (this.keys.size >= this.capacity) this.keys.delete(this.keys.keys().next().value!);
    }
    this.keys.set(id, signer);
    return signer;
  }
}

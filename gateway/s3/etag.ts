/**
 * S3 ETags. rclone, s3cmd and `aws s3 sync` compare them with what they
 * computed locally to decide whether a file changed, so they must be S3's:
 * the MD5 of the content for an object put whole, and for a multipart
 * object the MD5 of its parts' binary MD5s, followed by `-<part count>`.
 * They are computed while the bytes stream (Md5Stage), never by reading
 * an object back. Trove's sha256 stays the file's identity.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Passes bytes on unchanged and takes their MD5 on the way. */
export class Md5Stage extends Transform {
  private readonly hash: Hash = createHash('md5');
  private hex: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    done(null, chunk);
  }

  /** The MD5 of every byte that passed, in hex; only once the stream has ended. */
  md5(): string {
    this.hex ??= this.hash.digest('hex');
    return this.hex;
  }
}

/** The ETag header value of an object put whole: its MD5, quoted. */
export function singlePartEtag(md5Hex: string): string {
  return `"${md5Hex}"`;
}

/** The ETag of a multipart object: MD5 of the parts' MD5s (as bytes, in part order), `-N`, quoted. */
export function multipartEtag(partMd5Hex: readonly string[]): string {
  const hash = createHash('md5');
  for (const md5 of partMd5Hex) hash.update(Buffer.from(md5, 'hex'));
  return `"${hash.digest('hex')}-${partMd5Hex.length}"`;
}

/** The MD5 hex of an ETag a client sends back (CompleteMultipartUpload's parts): quotes and case dropped. */
export function etagMd5(etag: string): string | undefined {
  const bare = etag
    .trim()
    .replace(/^"(.*)"$/, '$1')
    .toLowerCase();
  return /^[0-9a-f]{32}$/.test(bare) ? bare : undefined;
}

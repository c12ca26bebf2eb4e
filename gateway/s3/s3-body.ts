/**
 * Request bodies of the S3 API as the bytes they stand for: an aws-chunked
 * body decoded (chunk signatures and trailing checksum verified), a plain
 * one checked against its `x-amz-checksum-*` header, and, when the
 * signature covers a sha256 of the body, that sha256 checked too.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { StreamingSignature } from './aws-chunked.js';
import { bodyDecoder } from './body-decoder.js';
import { Md5Stage } from './etag.js';
import { isPayloadDigest } from './payload-hash.js';
import type { S3Call } from './s3-context.js';
import { S3Error } from './s3-errors.js';
import type { SigV4Auth } from './sigv4.js';

/** What an aws-chunked body's chunk signatures chain from. */
function streamingSignature(auth: SigV4Auth): StreamingSignature {
  return {
    signingKey: auth.signingKey,
    scope: auth.scope,
    amzDate: auth.amzDate,
    signature: auth.signature,
  };
}

/** The object's bytes, decoded and verified as they stream, and their MD5 (the ETag) once ended. */
export function objectBody(call: S3Call): { source: Readable; md5: Md5Stage } {
  const incoming = call.c.env.incoming;
  const decoder = bodyDecoder(incoming.headers, streamingSignature(call.auth));
  const md5 = new Md5Stage();
  // pipe(), not pipeline(): a failure must not destroy the request, which is still to be answered.
  const first = decoder ?? md5;
  incoming.once('error', (err) => first.destroy(err));
  if (decoder) {
    decoder.once('error', (err) => md5.destroy(err));
    incoming.pipe(decoder).pipe(md5);
  } else {
    incoming.pipe(md5);
  }
  return { source: md5, md5 };
}

/**
 * A small body (an XML document), whole. One over `limit` is refused once
 * read to its end, so the answer still reaches the client.
 */
export async function readSmallBody(call: S3Call, limit: number): Promise<Buffer> {
  const incoming = call.c.env.incoming;
  const decoder = bodyDecoder(incoming.headers, streamingSignature(call.auth));
  if (decoder) incoming.once('error', (err) => decoder.destroy(err));
  const source: Readable = decoder ? incoming.pipe(decoder) : incoming;
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) continue;
    hash.update(chunk);
    chunks.push(chunk);
  }
  if (size > limit)
    throw new S3Error('MaxMessageLengthExceeded', 'Your request was too big.', {
      MaxMessageLengthBytes: String(limit),
    });
  checkPayloadDigest(call.auth, hash.digest('hex'));
  return Buffer.concat(chunks);
}

/**
 * When the signature covers the body's sha256 (x-amz-content-sha256 a hex
 * digest), the body received must have it: else 400 XAmzContentSHA256Mismatch.
 */
export function checkPayloadDigest(auth: SigV4Auth, sha256: string): void {
  if (!isPayloadDigest(auth.payloadHash) || auth.payloadHash.toLowerCase() === sha256) return;
  throw new S3Error(
    'XAmzContentSHA256Mismatch',
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
    { ClientComputedContentSHA256: auth.payloadHash, S3ComputedContentSHA256: sha256 },
  );
}

/**
 * S3's `aws-chunked` request bodies, decoded as they stream: the framing
 * stripped, each chunk's signature and the trailing checksum verified.
 *
 *   chunk   = hex(size) [";chunk-signature=" 64hex] CRLF data CRLF
 *   body    = *chunk  "0" [";chunk-signature=" 64hex] CRLF  *(trailer CRLF)  CRLF
 *
 * Data is passed on as it arrives, as subarrays of the incoming buffers; a
 * chunk is never held. So a chunk's bytes go downstream before its signature
 * is checked (at the chunk's last byte), and the trailing checksum is checked
 * at the body's end: a failure errors the stream before it ends, and the
 * consumer must discard what it received (it does: an object is committed
 * only once its stream has ended).
 */
import { createHash, createHmac, timingSafeEqual, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import {
  createChecksum,
  verifyChecksum,
  type Checksum,
  type ChecksumAlgorithm,
} from './checksums.js';
import { S3Error } from './s3-errors.js';

/** The `x-amz-content-sha256` values of an aws-chunked body. */
export type StreamingMode =
  | 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
  | 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
  | 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

export const STREAMING_MODES: readonly string[] = [
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
] satisfies StreamingMode[];

/** What the request's signature check hands over for a signed streaming body. */
export interface StreamingSignature {
  /** The SigV4 signing key derived from the secret, date, region and service. */
  signingKey: Readonly<Buffer>;
  /** The credential scope, e.g. `20261205/us-east-1/s3/aws4_request`. */
  scope: string;
  /** The request's `x-amz-date`, e.g. `20261205T120000Z`. */
  amzDate: string;
  /** The request's own signature (hex): the seed the first chunk's signature chains from. */
  signature: string;
}

export interface AwsChunkedOptions {
  mode: StreamingMode;
  /** Required by the signed modes. */
  signing?: StreamingSignature;
  /** `x-amz-decoded-content-length`, when sent: the body must decode to exactly this. */
  decodedLength?: number;
  /** The checksum to verify: its value from a header, or, without one, from the trailer. */
  checksum?: { algorithm: ChecksumAlgorithm; value?: string };
  /** Chunks announcing more are refused (default MAX_CHUNK_BYTES). */
  maxChunkBytes?: number;
}

export const MAX_CHUNK_BYTES = 16 << 20;
/** Longer chunk header or trailer lines are refused: real ones are under 100 bytes. */
const MAX_LINE_BYTES = 4096;
const LF = 0x0a;
const CR = 0x0d;
const EMPTY_SHA256 = createHash('sha256').digest('hex');
const TRAILER_SIGNATURE = 'x-amz-trailer-signature';

/** Where the decoder is in the grammar: a chunk header, its data, the CRLF after it, the trailer. */
type State = 'header' | 'data' | 'dataEnd' | 'trailer' | 'done';

/**
 * Decodes an aws-chunked body (see the top of this file). Errors are
 * S3Errors: 403 SignatureDoesNotMatch, 400 BadDigest, 400 IncompleteBody (the
 * body ended early, or is not `decodedLength` long), 400 InvalidRequest or
 * MalformedTrailerError (framing). Its source may be a Node Readable or an
 * AsyncIterable<Buffer> (through `pipeline()`).
 */
export class AwsChunkedDecoder extends Transform {
  private state: State = 'header';
  /** The start of a line whose end has not arrived yet. */
  private partialLine: Buffer | undefined;
  /** Data bytes of the current chunk still to come. */
  private remaining = 0;
  /** Data bytes announced by the chunk headers so far. */
  private announced = 0;
  private chunks = 0;
  private readonly signed: boolean;
  private readonly maxChunkBytes: number;
  /** The constant head of every chunk's string to sign. */
  private readonly chunkPrefix: string;
  private chunkSignature = '';
  private chunkHash: Hash | undefined;
  /** The signature the next one chains from. */
  private previous: string;
  private readonly checksum: Checksum | undefined;
  private readonly trailers = new Map<string, string>();

  constructor(private readonly options: AwsChunkedOptions) {
    super();
    this.signed = options.mode !== 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
    if (this.signed && !options.signing)
      throw new TypeError(`${options.mode} needs a signing context`);
    const { amzDate = '', scope = '', signature = '' } = options.signing ?? {};
    this.chunkPrefix = `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n`;
    this.previous = signature;
    this.maxChunkBytes = options.maxChunkBytes ?? MAX_CHUNK_BYTES;
    this.checksum = options.checksum && createChecksum(options.checksum.algorithm);
  }

  override _transform(input: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.consume(input);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (this.state === 'done') return done();
    const received = this.announced - this.remaining;
    done(new S3Error('IncompleteBody', `the body ended early, after ${received} data bytes`));
  }

  private consume(input: Buffer): void {
    let pos = 0;
    while (pos < input.length) {
      if (this.state === 'data') {
        const end = Math.min(input.length, pos + this.remaining);
        const data = input.subarray(pos, end);
        this.chunkHash?.update(data);
        this.checksum?.update(data);
        this.push(data);
        this.remaining -= end - pos;
        pos = end;
        if (this.remaining === 0) {
          this.verifyChunk();
          this.state = 'dataEnd';
        }
        continue;
      }
      if (this.state === 'done') throw malformed('bytes after the end of the body');
      const lf = input.indexOf(LF, pos);
      const held = this.partialLine?.length ?? 0;
      if ((lf === -1 ? input.length : lf + 1) - pos + held > MAX_LINE_BYTES) {
        throw malformed(`a line longer than ${MAX_LINE_BYTES} bytes`);
      }
      if (lf === -1) {
        const rest = input.subarray(pos);
        this.partialLine = this.partialLine ? Buffer.concat([this.partialLine, rest]) : rest;
        return;
      }
      let line = input.subarray(pos, lf + 1);
      if (this.partialLine) {
        line = Buffer.concat([this.partialLine, line]);
        this.partialLine = undefined;
      }
      pos = lf + 1;
      if (line.length < 2 || line[line.length - 2] !== CR)
        throw malformed('a line not ended by CRLF');
      this.onLine(line.toString('latin1', 0, line.length - 2));
    }
  }

  private onLine(line: string): void {
    switch (this.state) {
      case 'header':
        return this.startChunk(line);
      case 'dataEnd':
        if (line !== '') throw malformed(`chunk ${this.chunks} is longer than its header says`);
        this.state = 'header';
        return;
      case 'trailer':
        if (line === '') return this.endBody();
        return this.addTrailer(line);
    }
  }

  private startChunk(line: string): void {
    const semi = line.indexOf(';');
    const hex = semi === -1 ? line : line.slice(0, semi);
    if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) throw malformed(`bad chunk size ${clip(hex)}`);
    const size = parseInt(hex, 16);
    if (size > this.maxChunkBytes) {
      throw malformed(`a chunk of ${size} bytes, over the limit of ${this.maxChunkBytes}`);
    }
    const { decodedLength } = this.options;
    if (decodedLength !== undefined && this.announced + size > decodedLength) {
      throw new S3Error(
        'IncompleteBody',
        `the body is longer than its x-amz-decoded-content-length of ${decodedLength}`,
      );
    }
    if (!this.signed && semi !== -1) throw malformed('a chunk extension in an unsigned body');
    if (this.signed) {
      this.chunkSignature = chunkSignature(semi === -1 ? '' : line.slice(semi));
      this.chunkHash = createHash('sha256');
    }
    this.chunks++;
    this.announced += size;
    this.remaining = size;
    if (size > 0) {
      this.state = 'data';
    } else {
      this.verifyChunk();
      this.state = 'trailer';
    }
  }

  /** The chunk's data is all in: check its signature before anything else of the body goes on. */
  private verifyChunk(): void {
    if (!this.chunkHash) return;
    const toSign = `${this.chunkPrefix}${this.previous}\n${EMPTY_SHA256}\n${this.chunkHash.digest('hex')}`;
    this.previous = this.verifySignature(toSign, this.chunkSignature, `chunk ${this.chunks}`);
    this.chunkHash = undefined;
  }

  private addTrailer(line: string): void {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const allowed =
      this.options.mode.endsWith('-TRAILER') &&
      (name === `x-amz-checksum-${this.options.checksum?.algorithm}` ||
        (this.signed && name === TRAILER_SIGNATURE));
    if (colon === -1 || !allowed || this.trailers.has(name)) {
      throw new S3Error('MalformedTrailerError', `unexpected trailer line ${clip(line)}`);
    }
    this.trailers.set(name, line.slice(colon + 1).trim());
  }

  private endBody(): void {
    const { mode, decodedLength, checksum } = this.options;
    if (mode === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER') this.verifyTrailerSignature();
    if (decodedLength !== undefined && this.announced !== decodedLength) {
      throw new S3Error(
        'IncompleteBody',
        `the body is ${this.announced} bytes, not its x-amz-decoded-content-length of ${decodedLength}`,
      );
    }
    if (this.checksum && checksum) {
      const name = `x-amz-checksum-${checksum.algorithm}`;
      const value = checksum.value ?? this.trailers.get(name);
      if (value === undefined)
        throw new S3Error('MalformedTrailerError', `the trailer has no ${name}`);
      verifyChecksum(this.checksum, { algorithm: checksum.algorithm, value });
    }
    this.state = 'done';
  }

  /** Signs the trailer lines but the signature's own, as canonical headers (`name:value\n`, sorted). */
  private verifyTrailerSignature(): void {
    const sent = this.trailers.get(TRAILER_SIGNATURE);
    if (sent === undefined)
      throw new S3Error('MalformedTrailerError', `the trailer has no ${TRAILER_SIGNATURE}`);
    const canonical = [...this.trailers]
      .filter(([name]) => name !== TRAILER_SIGNATURE)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, value]) => `${name}:${value}\n`)
      .join('');
    const { amzDate, scope } = this.options.signing!;
    const toSign = `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${this.previous}\n${createHash('sha256').update(canonical).digest('hex')}`;
    this.verifySignature(toSign, sent, 'the trailer');
  }

  /** Returns the signature of `toSign`, or throws 403 if it is not `sent`. */
  private verifySignature(toSign: string, sent: string, what: string): string {
    const actual = createHmac('sha256', this.options.signing!.signingKey)
      .update(toSign)
      .digest('hex');
    if (sent.length !== actual.length || !timingSafeEqual(Buffer.from(sent), Buffer.from(actual))) {
      throw new S3Error('SignatureDoesNotMatch', `the signature of ${what} does not match`);
    }
    return actual;
  }
}

/** The signature of a signed chunk's header extension `;chunk-signature=<64 hex>`. */
function chunkSignature(extension: string): string {
  const match = /^;chunk-signature=([0-9a-f]{64})$/.exec(extension);
  if (!match) throw malformed(`a signed chunk without a valid chunk-signature: ${clip(extension)}`);
  return match[1]!;
}

function malformed(problem: string): S3Error {
  return new S3Error('InvalidRequest', `malformed aws-chunked body: ${problem}`);
}

/** A client's bytes, safe and short enough to quote in an error message. */
function clip(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

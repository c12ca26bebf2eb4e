/**
 * What a file is, decided from its first bytes (magic numbers, via the
 * file-type library), never from its name or the client's Content-Type: the
 * type we later serve it with must not be something a client chose.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { fileTypeFromBuffer } from 'file-type';
import { BadRequestError, UnsupportedMediaTypeError } from '../../shared/errors.js';

/** file-type's own advice for how much of a file it needs. */
export const SNIFF_BYTES = 4100;
export const UNKNOWN_TYPE = 'application/octet-stream';

/** True when `type` matches one of the patterns (`image/*`, `application/pdf`, `*\/*`). */
export function isAllowedType(type: string, patterns: readonly string[]): boolean {
  return patterns.some(
    (p) => p === '*/*' || p === type || (p.endsWith('/*') && type.startsWith(p.slice(0, -1))),
  );
}

export async function detectType(head: Uint8Array): Promise<string> {
  return (await fileTypeFromBuffer(head))?.mime ?? UNKNOWN_TYPE;
}

/**
 * Holds back the first SNIFF_BYTES (or the whole file if shorter), detects the
 * type, then lets everything through, or fails (415, or 400 for an empty
 * file) before a single byte has gone further down the pipeline.
 */
export class TypeSniffer extends Transform {
  /** Resolves with the detected type once known; rejects if the stream fails first or the type is refused. */
  readonly type: Promise<string>;
  private resolveType!: (type: string) => void;
  private rejectType!: (err: Error) => void;
  private head: Buffer[] = [];
  private headBytes = 0;
  private decided = false;

  constructor(
    private readonly allowed: readonly string[],
    private readonly fileName: string,
  ) {
    super();
    this.type = new Promise((resolve, reject) => {
      this.resolveType = resolve;
      this.rejectType = reject;
    });
    this.type.catch(() => {}); // observed by the caller; avoid an unhandled rejection when it is not
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.decided) return done(null, chunk);
    this.head.push(chunk);
    this.headBytes += chunk.length;
    if (this.headBytes < SNIFF_BYTES) return done();
    this.decide().then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    if (this.decided) return done();
    this.decide().then(() => done(), done);
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    this.rejectType(err ?? new Error('stream closed before its type was known'));
    done(err);
  }

  private async decide(): Promise<void> {
    this.decided = true;
    const head = Buffer.concat(this.head);
    this.head = [];
    if (head.length === 0) throw new BadRequestError(`"${this.fileName}" is empty`, 'EMPTY_FILE');
    const type = await detectType(head.subarray(0, SNIFF_BYTES));
    if (!isAllowedType(type, this.allowed)) {
      const what = type === UNKNOWN_TYPE ? 'an unrecognised type' : type;
      throw new UnsupportedMediaTypeError(
        `"${this.fileName}" is ${what}; allowed: ${this.allowed.join(', ')}`,
      );
    }
    this.resolveType(type);
    this.push(head);
  }
}

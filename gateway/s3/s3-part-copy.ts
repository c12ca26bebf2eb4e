/**
 * UploadPartCopy: `PUT /bucket/key?partNumber=N&uploadId=U` with
 * `x-amz-copy-source` (and `x-amz-copy-source-range`). The source's bytes,
 * read as CopyObject reads them (s3-copy.ts: owned, live, conditions held,
 * not counted as a download), are stored as UploadPart stores a body
 * (storePart).
 */
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ByteRange } from '../../shared/range.js';
import { openUpload } from './multipart-uploads.js';
import { ownedBucket, XML } from './s3-buckets.js';
import { header, type ObjectCall, type S3Deps } from './s3-context.js';
import { findCopySource, parseCopySource, readCopySource } from './s3-copy.js';
import { S3Error } from './s3-errors.js';
import { checkRoom, roomForPart, storePart } from './s3-multipart.js';
import { copyPartResultXml } from './s3-xml.js';

export async function uploadPartCopy(deps: S3Deps, call: ObjectCall) {
  const { c } = call;
  await ownedBucket(deps, call);
  const from = parseCopySource(header(c, 'x-amz-copy-source') ?? '');
  const upload = await openUpload(deps, call);
  const source = await findCopySource(deps, call, from);
  const range = parseCopySourceRange(header(c, 'x-amz-copy-source-range'), source.file.size);
  const partNumber = call.request.partNumber!;
  const length = range ? range.end - range.start + 1 : source.file.size;
  const room = await roomForPart(deps, upload, partNumber, length);
  // Refused before any byte of the source is read.
  checkRoom(deps, room, length);
  const read = await readCopySource(deps, c, source, range);
  if (!read) return RESPONSE_ALREADY_SENT; // the client left
  const { bytes, md5 } = read;
  await storePart(deps, upload, partNumber, room, { source: md5, md5 }).finally(() =>
    bytes.destroy(),
  ); // a refused part stops reading the source
  return c.body(copyPartResultXml(md5.md5(), new Date()), 200, XML);
}

const RANGE_FORM =
  'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy';

/**
 * `x-amz-copy-source-range: bytes=first-last`, inclusive, of an object of
 * `size` bytes. Unlike a GET's Range, both ends are required and must lie
 * within the object: anything else is 400 InvalidArgument, as S3 answers.
 * No header: the whole object.
 */
export function parseCopySourceRange(
  value: string | undefined,
  size: number,
): ByteRange | undefined {
  if (value === undefined) return undefined;
  const match = /^bytes=(\d{1,15})-(\d{1,15})$/.exec(value.trim());
  const start = match ? Number(match[1]) : NaN;
  const end = match ? Number(match[2]) : NaN;
  if (!match || start > end) throw badRange(value, RANGE_FORM);
  if (end >= size)
    throw badRange(value, `Range specified is not valid for source object of size: ${size}`);
  return { start, end };
}

function badRange(value: string, message: string): S3Error {
  return new S3Error('InvalidArgument', message, {
    ArgumentName: 'x-amz-copy-source-range',
    ArgumentValue: value.slice(0, 200),
  });
}

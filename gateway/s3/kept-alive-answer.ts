/**
 * The answer of a slow CompleteMultipartUpload, as S3 gives it: when the
 * work is not done within `afterMs`, a 200 goes out at once, then a space
 * every `afterMs`, so a client's read timeout (aws-cli's is 60 s) does not
 * run out while the nodes compose a large object; the document follows when
 * the work ends, or S3's `<Error>` if it failed. SDKs read an `<Error>` in
 * the 200 of a Complete as the error it names (S3 documents this).
 *
 * The XML declaration is written first and the spaces after it: a document
 * may not have anything before its declaration, and whitespace between the
 * declaration and the root element is allowed (MinIO learnt this the hard way,
 * minio/minio#7253).
 */
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { Logger } from '../../shared/logger.js';
import { currentRequestId } from '../../shared/request-context.js';
import { asS3Error } from './s3-error-response.js';
import { S3Error } from './s3-errors.js';
import { errorXml } from './s3-xml.js';
import { XML_DECLARATION } from './xml-writer.js';

/** A finished answer: its document (with its declaration) and headers. */
export interface XmlAnswer {
  xml: string;
  headers: Record<string, string>;
}

export interface KeepAlive {
  /** How long the work may take before the 200 goes out, and the time between spaces after. */
  afterMs: number;
  /** Headers known before the work ends, sent with an early 200. */
  earlyHeaders: Record<string, string>;
  log: Logger;
}

/**
 * Answers `work`: as a plain response when it settles within `o.afterMs`
 * (an error is thrown, for the S3 error handler); otherwise a 200 at once,
 * spaces while it runs, then its document or the `<Error>` it failed with.
 */
export async function answerKeptAlive(
  c: Context<{ Bindings: HttpBindings }>,
  work: Promise<XmlAnswer>,
  o: KeepAlive,
): Promise<Response | typeof RESPONSE_ALREADY_SENT> {
  const outcome = work.then(
    (answer) => ({ answer }),
    (error: unknown) => ({ error }),
  );
  let timer: NodeJS.Timeout | undefined;
  const slow = new Promise<'slow'>((resolve) => (timer = setTimeout(resolve, o.afterMs, 'slow')));
  const first = await Promise.race([outcome, slow]);
  clearTimeout(timer);
  if (first !== 'slow') {
    if ('error' in first) throw first.error;
    return c.body(first.answer.xml, 200, first.answer.headers);
  }
  const out = c.env.outgoing;
  out.writeHead(200, { ...o.earlyHeaders, 'content-type': 'application/xml' });
  out.write(XML_DECLARATION);
  // A client gone meanwhile gets no more spaces; the work still ends (a Complete sent again answers it).
  const spaces = setInterval(() => out.destroyed || out.write(' '), o.afterMs);
  try {
    const last = await outcome;
    out.end(
      withoutDeclaration('answer' in last ? last.answer.xml : errorDocument(c, last.error, o)),
    );
  } finally {
    clearInterval(spaces);
  }
  return RESPONSE_ALREADY_SENT;
}

/** The `<Error>` document `err` is answered with, as the S3 error handler would write it. */
function errorDocument(c: Context, err: unknown, o: KeepAlive): string {
  let s3 = asS3Error(err);
  if (s3 === undefined) {
    o.log.error({ err, path: c.req.path }, 'S3: unhandled error after a kept-alive 200');
    s3 = new S3Error('InternalError', 'We encountered an internal error. Please try again.');
  } else {
    o.log.warn({ code: s3.code, err: (err as Error).message }, 'S3: failed after a kept-alive 200');
  }
  return errorXml({
    code: s3.code,
    message: s3.message,
    details: s3.details,
    resource: c.req.path,
    requestId: currentRequestId(),
  });
}

function withoutDeclaration(xml: string): string {
  return xml.startsWith(XML_DECLARATION) ? xml.slice(XML_DECLARATION.length) : xml;
}

/**
 * POST /upload (multipart, one or several `file` parts) and
 * PUT /upload/:filename (raw body). Both stream each file through
 * `ingestFile` and commit all of a request's files in one transaction, so a
 * request either stores every file or none.
 */
import type { HttpBindings } from '@hono/node-server';
import busboy from 'busboy';
import { z } from 'zod';
import type { Context } from 'hono';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { BadRequestError, PayloadTooLargeError } from '../../shared/errors.js';
import { initialProcessing, type CommitFile } from '../../shared/metadata-store.js';
import { fileJson } from '../files/file-view.js';
import { scheduleDeletion, type DeletionDeps } from '../files/deletion.js';
import { cleanFileName } from '../http/http-names.js';
import type { RepairQueue } from '../../shared/repair-queue.js';
import { requestRepair } from '../cluster/repair-requests.js';
import { requestProcessing } from '../files/variants.js';
import { discardUpload, ingestFile, type IngestDeps, type IngestedFile } from './ingest.js';
import { baseUrl, type PublicUrlConfig } from '../http/public-url.js';
import { disconnectSignal } from '../http/request-signal.js';
import type { GatewayMetrics } from '../metrics.js';
import {
  isOptionName,
  optionsFromQuery,
  parseOption,
  resolveOptions,
  type OptionName,
  type UploadLimits,
} from './upload-options.js';

export interface UploadDeps extends IngestDeps, DeletionDeps {
  limits: UploadLimits;
  urls: PublicUrlConfig;
  /** An upload stored on fewer nodes than wanted is queued for repair here. */
  repairs: RepairQueue;
  metrics?: Pick<GatewayMetrics, 'uploadRead' | 'uploadStored' | 'uploadFailed'>;
}

type Ctx = Context<{ Bindings: HttpBindings }>;

/** `:filename` of PUT /upload/:filename (cleaned up before it is stored: see http-names.ts). */
export const UPLOAD_FILENAME = z.string().min(1).meta({
  description: 'The file name to keep (curl -T appends it to a URL ending in /).',
  example: 'photo.jpg',
});
type Given = Partial<Record<OptionName, number>>;

export function handleRawUpload(deps: UploadDeps, c: Ctx) {
  return counted(deps, rawUpload(deps, c));
}

export function handleMultipartUpload(deps: UploadDeps, c: Ctx) {
  return counted(deps, multipartUpload(deps, c));
}

/** An upload request that failed, counted by outcome for GET /metrics (stored ones count in respondCommitted). */
async function counted<T>(deps: UploadDeps, upload: Promise<T>): Promise<T> {
  try {
    return await upload;
  } catch (err) {
    deps.metrics?.uploadFailed(err);
    throw err;
  }
}

async function rawUpload(deps: UploadDeps, c: Ctx) {
  const name = UPLOAD_FILENAME.safeParse(c.req.param('filename'));
  if (!name.success)
    throw new BadRequestError(
      'name the file in the path: PUT /upload/<filename>',
      'MISSING_FILENAME',
    );
  const link = c.get('uploadLink');
  // Options a signed upload link fixes win over the uploader's.
  const given = { ...optionsFromQuery(c.req.query(), deps.limits), ...link?.options };
  const length = c.req.header('content-length');
  if (length !== undefined && !/^\d+$/.test(length))
    throw new BadRequestError('invalid Content-Length');
  const incoming = c.env.incoming;
  const provisional = resolveOptions(given, deps.limits);
  await link?.take(); // before any byte is stored; given back unless the answer is 201
  const file = await ingestFile(deps, {
    source: incoming,
    name: cleanFileName(name.data),
    declaredLength: length === undefined ? undefined : Number(length),
    maxDownloads: provisional.maxDownloads,
    expiresAt: Date.now() + provisional.ttlSeconds * 1000,
    signal: disconnectSignal(c.env.outgoing, incoming),
    uploadLink: link?.link.id,
  });
  return respondCommitted(deps, c, [file], given, false);
}

async function multipartUpload(deps: UploadDeps, c: Ctx) {
  const incoming = c.env.incoming;
  if (!/^multipart\/form-data/i.test(c.req.header('content-type') ?? '')) {
    throw new BadRequestError(
      'POST /upload expects multipart/form-data with a "file" field (curl -F file=@photo.jpg); for a raw body use PUT /upload/<filename>',
      'NOT_MULTIPART',
    );
  }
  const link = c.get('uploadLink');
  const fixed: Given = link?.options ?? {};
  // Options a signed upload link fixes win over the uploader's, from the query or the form.
  const given: Given = { ...optionsFromQuery(c.req.query(), deps.limits), ...fixed };
  const controller = new AbortController();
  const clientGone = disconnectSignal(c.env.outgoing, incoming);
  clientGone.addEventListener('abort', () => controller.abort(clientGone.reason), { once: true });

  const ingests: Promise<IngestedFile>[] = [];
  let failure: Error | undefined;
  try {
    await readParts(incoming, deps, {
      onField(name, value) {
        if (isOptionName(name) && !(name in fixed))
          given[name] = parseOption(name, value, deps.limits);
      },
      onFile(stream, filename) {
        const provisional = resolveOptions(given, deps.limits);
        // Through a link, each file takes its slot before any of its bytes is stored.
        const slot = link ? link.take() : Promise.resolve();
        const ingest = slot.then(() =>
          ingestFile(deps, {
            source: stream,
            name: cleanFileName(filename),
            maxDownloads: provisional.maxDownloads,
            expiresAt: Date.now() + provisional.ttlSeconds * 1000,
            signal: controller.signal,
            uploadLink: link?.link.id,
          }),
        );
        ingests.push(ingest);
        return ingest;
      },
    });
  } catch (err) {
    failure = err as Error;
    controller.abort(failure); // stop the other files of the request at once
  }

  const settled = await Promise.allSettled(ingests);
  const stored = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  failure ??= settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')?.reason;
  if (!failure && stored.length === 0) {
    failure = new BadRequestError(
      'no file in the form: send it in a field named "file"',
      'NO_FILE',
    );
  }
  if (failure) {
    await Promise.all(stored.map((f) => discardUpload(deps, f.id)));
    throw failure;
  }
  return respondCommitted(deps, c, stored, given, stored.length > 1);
}

interface PartHandlers {
  onField(name: string, value: string): void;
  /** Starts storing one file; the returned promise settles when it is stored or failed. */
  onFile(stream: Readable, filename: string): Promise<unknown>;
}

/** Parses the multipart body with busboy; resolves when every part has been read, rejects on the first problem. */
function readParts(incoming: IncomingMessage, deps: UploadDeps, h: PartHandlers): Promise<void> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: incoming.headers,
        defParamCharset: 'utf8',
        limits: {
          files: deps.uploads.maxFilesPerUpload,
          fields: 32,
          fieldSize: 1024,
          parts: deps.uploads.maxFilesPerUpload + 32,
        },
      });
    } catch (err) {
      return reject(
        new BadRequestError(
          `malformed multipart request: ${(err as Error).message}`,
          'MALFORMED_MULTIPART',
        ),
      );
    }
    let failed = false;
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      incoming.unpipe(parser);
      reject(err);
    };
    parser.on('field', (name, value, info) => {
      if (failed) return;
      if (name === 'file')
        return fail(new BadRequestError('the "file" field must be a file, not text', 'NO_FILE'));
      if (info.valueTruncated) return fail(new BadRequestError(`form field "${name}" is too long`));
      try {
        h.onField(name, value);
      } catch (err) {
        fail(err as Error);
      }
    });
    parser.on('file', (name, stream, info) => {
      if (failed) return stream.resume();
      if (name !== 'file') {
        stream.resume();
        return fail(
          new BadRequestError(
            `unexpected file field "${name}": send files in a field named "file"`,
            'UNEXPECTED_FIELD',
          ),
        );
      }
      h.onFile(stream, info.filename ?? 'file').catch(fail);
    });
    parser.on('filesLimit', () =>
      fail(new PayloadTooLargeError(`at most ${deps.uploads.maxFilesPerUpload} files per upload`)),
    );
    parser.on('partsLimit', () => fail(new BadRequestError('too many parts in the form')));
    parser.on('fieldsLimit', () => fail(new BadRequestError('too many fields in the form')));
    parser.on('error', (err: Error) =>
      fail(new BadRequestError(`malformed multipart body: ${err.message}`, 'MALFORMED_MULTIPART')),
    );
    parser.on('close', () => {
      if (!failed) resolve();
    });
    incoming.pipe(parser);
  });
}

async function respondCommitted(
  deps: UploadDeps,
  c: Ctx,
  files: IngestedFile[],
  given: Given,
  many: boolean,
) {
  const commits = await commitIngested(deps, files, resolveOptions(given, deps.limits));
  const base = baseUrl((n) => c.req.header(n), c.req.url, deps.urls);
  const bodies = files.map((f, i) => uploadAnswer(f, commits[i]!, base));
  if (!many) c.header('location', `${base}/files/${files[0]!.id}`);
  return c.json(many ? { files: bodies } : bodies[0], 201);
}

/**
 * Commits files whose bytes are stored (all or none, with their final
 * options), then queues their jobs: deletion at expiry, processing, repair of
 * missing copies. A failed commit removes them all. Every way in (a request,
 * a completed resumable upload) ends here.
 */
export async function commitIngested(
  deps: UploadDeps,
  files: IngestedFile[],
  options: { maxDownloads: number; ttlSeconds: number },
): Promise<CommitFile[]> {
  const expiresAt = Date.now() + options.ttlSeconds * 1000;
  const commits = files.map((f) => ({
    id: f.id,
    size: f.size,
    sha256: f.sha256,
    maxDownloads: options.maxDownloads,
    expiresAt,
    replicas: f.replicas.map((r) => ({ key: f.id, node: r.node, state: r.state })),
  }));
  try {
    await deps.store.commitUploads(commits);
  } catch (err) {
    await Promise.all(files.map((f) => discardUpload(deps, f.id)));
    throw err;
  }
  // Both jobs are confirmed by RabbitMQ before the answer (or given up after 2 s: the sweeps cover them).
  await Promise.all([
    ...files.map((f) => scheduleDeletion(deps, f.id, expiresAt)),
    ...files
      .filter((f) => initialProcessing(f.contentType) === 'pending')
      .map((f) => requestProcessing(deps, f.id)),
  ]);
  // Fewer copies than wanted (a node was down): the workers make the rest.
  for (const f of files)
    if (f.replicas.some((r) => r.state !== 'ok')) void requestRepair(deps, f.id);
  deps.metrics?.uploadStored(files.length);
  return commits;
}

/** The upload answer of a file just committed (docs/api.md), answered from the commit: no need to read it back. */
export function uploadAnswer(f: IngestedFile, commit: CommitFile, base: string) {
  return {
    ...fileJson(
      {
        ...f,
        ...commit,
        downloadsUsed: 0,
        deletedAt: null,
        processing: initialProcessing(f.contentType),
        processingError: null,
      },
      commit.replicas,
      base,
    ),
    delete_token: f.deleteToken,
  };
}

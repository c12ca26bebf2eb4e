/**
 * Resumable uploads at `/tus/` (tus 1.0: core, creation, creation-with-upload,
 * creation-defer-length, termination, expiration, checksum). @tus/server
 * speaks the protocol over TroveTusStore (tus-data-store.ts); this module
 * mounts it, applies Trove's rules around it (auth and rate limits at
 * creation, the per-client limit, the options in Upload-Metadata) and turns
 * its errors into Trove's JSON ones. `GET /tus/:id` answers a finished
 * upload with the file object of `POST /upload` (docs/api.md).
 */
import { randomBytes } from 'node:crypto';
import type { HttpBindings } from '@hono/node-server';
import { MemoryLocker, Server, type ServerOptions } from '@tus/server';
import type { Locker } from '@tus/utils';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { tusRequestOf } from './tus-node-request.js';
import {
  BadRequestError,
  NotFoundError,
  PayloadTooLargeError,
  TooManyRequestsError,
  TroveError,
  errorBody,
} from '../../shared/errors.js';
import { clientAddress } from '../http/client-ip.js';
import { baseUrl } from '../http/public-url.js';
import { fileJson } from '../files/file-view.js';
import { resumableDeleteToken } from './completion.js';
import type { ResumableDeps } from './resumable-deps.js';
import { TroveTusStore } from './tus-data-store.js';
import { currentTusRequest, runTusRequest, type TusRequest } from './tus-request.js';
import { CHECKSUM_ALGORITHMS, parseUploadChecksum } from './upload-checksum.js';

export const TUS_PATH = '/tus';

type Ctx = Context<{ Bindings: HttpBindings }>;

export interface ResumableRoutes {
  /** Shared by every gateway (redis-locker.ts); one gateway alone may use @tus/server's MemoryLocker. */
  locker?: Locker;
  /** Middleware of upload creation: the rate limit, then UPLOAD_TOKEN or a signed link (its slot is given back here, not by the middleware). */
  creation: MiddlewareHandler[];
}

export function mountResumable(
  app: Hono<{ Bindings: HttpBindings }>,
  deps: ResumableDeps,
  routes: ResumableRoutes,
): void {
  const tus = createTusServer(deps, routes.locker ?? new MemoryLocker());
  const handle = (c: Ctx) => serveTus(deps, tus, c);
  const collection = `${TUS_PATH}/`;
  for (const middleware of routes.creation) app.on('POST', collection, middleware);
  app.on(['POST', 'OPTIONS'], collection, handle);
  // Hono answers HEAD with the GET route: HEAD is tus's, GET the finished upload's file object.
  app.get(`${TUS_PATH}/:upload_id`, (c) =>
    c.req.method === 'HEAD' ? handle(c) : finishedUpload(deps, c),
  );
  app.on(['PATCH', 'DELETE'], `${TUS_PATH}/:upload_id`, handle);
}

function createTusServer(deps: ResumableDeps, locker: Locker): Server {
  const options: ServerOptions & { datastore: TroveTusStore } = {
    path: TUS_PATH,
    datastore: new TroveTusStore(deps),
    locker,
    maxSize: deps.uploads.maxUploadBytes,
    // The upload's URL is a capability (whoever has it may PATCH or DELETE): 128 random bits.
    namingFunction: () => randomBytes(16).toString('base64url'),
    generateUrl: (req, { id }) =>
      `${baseUrl((n) => req.headers.get(n) ?? undefined, req.url, deps.urls)}${TUS_PATH}/${id}`,
    exposedHeaders: ['Trove-File-Id', 'X-Request-Id'],
    onUploadCreate: async (_req, upload) => {
      await checkCreation(deps, upload.size);
      return {};
    },
    onUploadFinish: async (_req, upload) => {
      const row = await deps.store.getResumable(upload.id);
      const headers: Record<string, string> = row ? { 'Trove-File-Id': row.fileId } : {};
      return { headers };
    },
    onResponseError: (_req, err) => tusError(deps, err),
  };
  return new Server(options);
}

/**
 * Before an upload is created: not empty, within the client's limit of
 * incomplete uploads (their count and reserved bytes: parts take disk on
 * every node until they complete or expire), and a slot of the signed link
 * it comes through.
 */
async function checkCreation(deps: ResumableDeps, length: number | undefined): Promise<void> {
  if (length === 0) throw new BadRequestError('the file is empty', 'EMPTY_FILE');
  const request = currentTusRequest();
  const { resumableUploadsPerClient: maxUploads, resumableBytesPerClient: maxBytes } =
    deps.resumable;
  const usage = await deps.store.resumableUsage(request.client, Date.now());
  if (usage.uploads + 1 > maxUploads || usage.bytes + (length ?? 0) > maxBytes) {
    throw new TooManyRequestsError(
      `this client has ${usage.uploads} unfinished resumable uploads (${usage.bytes} bytes); at most ${maxUploads} and ${maxBytes} bytes: finish or DELETE some first`,
      60,
    );
  }
  await request.link?.take();
}

/** Runs one tus request, with what the data store needs of it, and answers it. */
async function serveTus(deps: ResumableDeps, tus: Server, c: Ctx) {
  const incoming = c.env.incoming;
  const length = c.req.header('content-length');
  const request: TusRequest = {
    client:
      clientAddress(
        incoming.socket.remoteAddress,
        c.req.header('x-forwarded-for'),
        deps.urls.trustProxy,
      )?.key ?? 'unknown',
    contentLength: length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined,
    checksum:
      c.req.method === 'PATCH' ? parseUploadChecksum(c.req.header('upload-checksum')) : undefined,
    link: c.get('uploadLink'),
  };
  const response = await runTusRequest(request, () =>
    tus.handleWeb(tusRequestOf(incoming, c.env.outgoing)),
  );
  if (c.req.method === 'OPTIONS')
    response.headers.set('Tus-Checksum-Algorithm', CHECKSUM_ALGORITHMS.join(','));
  if (response.status >= 400) {
    response.headers.set('content-type', 'application/json');
    if (response.status === 503) response.headers.set('retry-after', '2');
  }
  // A creation through a signed link that did not create gives its slot back.
  if (response.status !== 201) await request.link?.giveBack();
  // Answered by Hono like any route (its HEAD handling, the request log's status).
  return response;
}

/** What tus calls the errors it answers, as Trove's error codes. */
const TUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  403: 'FORBIDDEN',
  404: 'UPLOAD_NOT_FOUND',
  409: 'UPLOAD_OFFSET_MISMATCH',
  410: 'UPLOAD_EXPIRED',
  412: 'TUS_VERSION_UNSUPPORTED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  460: 'CHECKSUM_MISMATCH',
  501: 'NOT_IMPLEMENTED',
};

/** Any error of a tus request as `{status_code, body}` with Trove's JSON body. */
function tusError(
  deps: ResumableDeps,
  err: Error | { status_code: number; body: string },
): { status_code: number; body: string } {
  if (err instanceof TroveError)
    return { status_code: err.status, body: JSON.stringify(err.body()) };
  if ('status_code' in err && typeof err.status_code === 'number') {
    const message = err.body.trim();
    // The lock is held by a request that does not let go: the client's retry will find it free.
    if (/lock/i.test(message) && err.status_code === 500)
      return {
        status_code: 423,
        body: json('UPLOAD_LOCKED', 'another request is writing this upload; retry shortly'),
      };
    // tus says only "Maximum size exceeded": name the limit, as POST /upload does.
    if (err.status_code === 413) {
      const tooLarge = PayloadTooLargeError.forBytes(deps.uploads.maxUploadBytes);
      return { status_code: 413, body: JSON.stringify(tooLarge.body()) };
    }
    const code = TUS_CODES[err.status_code] ?? 'TUS_ERROR';
    return { status_code: err.status_code, body: json(code, message) };
  }
  deps.log.error(
    { err: (err as Error).message, stack: (err as Error).stack },
    'resumable upload failed',
  );
  return { status_code: 500, body: json('INTERNAL', 'internal error') };
}

function json(code: string, message: string): string {
  return JSON.stringify(errorBody(code, message));
}

/**
 * GET /tus/:id: the file object of a finished upload, with its delete token
 * (only the uploader knows the upload's URL); 409 while bytes are missing.
 */
async function finishedUpload(deps: ResumableDeps, c: Ctx) {
  const upload = await deps.store.getResumable(c.req.param('upload_id') ?? '');
  if (!upload || upload.state === 'terminated')
    throw new NotFoundError('no such resumable upload', 'UPLOAD_NOT_FOUND');
  const file = upload.state === 'done' ? await deps.store.getFile(upload.fileId) : undefined;
  if (!file || file.state !== 'committed') {
    throw new TroveError(
      'UPLOAD_INCOMPLETE',
      409,
      `${upload.offset} of ${upload.length ?? 'an unknown number of'} bytes received; PATCH the rest (HEAD tells the offset)`,
    );
  }
  const replicas = await deps.store.replicasOf(file.id);
  const base = baseUrl((n) => c.req.header(n), c.req.url, deps.urls);
  return c.json({
    ...fileJson(file, replicas, base),
    delete_token: resumableDeleteToken(deps.uploadLinkKey, upload.id),
  });
}

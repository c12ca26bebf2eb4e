/**
 * The admin API (docs/api.md "Admin API"): list files, force-delete one,
 * trigger repairs and scrubs, see the job queues, mint signed upload links,
 * manage S3 access keys and bucket defaults (gateway/s3/s3-admin.ts).
 *
 * Every route lives on one sub-app that `mountAdmin` mounts under `/admin`
 * behind a single Bearer-token middleware, so no admin route can exist
 * outside it. Without ADMIN_TOKEN the whole API answers 401 (it is off).
 * Request schemas are exported: /openapi.json documents them from the same
 * objects that validate requests.
 */
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import type { JobPublisher } from '../../shared/amqp.js';
import type { GatewayConfig, NodeAddress } from '../../shared/config.js';
import type { LayoutView } from '../../shared/layout-watcher.js';
import {
  BadRequestError,
  GoneError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  UnavailableError,
} from '../../shared/errors.js';
import { ladderSteps, workQueues } from '../../shared/jobs.js';
import { FILE_ID_SCHEMA } from '../../shared/keys.js';
import type { Logger } from '../../shared/logger.js';
import {
  FILE_LIST_STATUSES,
  type FileRecord,
  type MetadataStore,
  type ReplicaState,
} from '../../shared/metadata-store.js';
import { isUnreachable, type GatewayNodeClient } from '../../shared/node-client.js';
import { integerParam } from '../../shared/string-params.js';
import { deleteNow, type DeletionDeps } from '../files/deletion.js';
import { fileStatus, findFile } from '../files/file-rules.js';
import { fileFields } from '../files/file-view.js';
import { baseUrl, type PublicUrlConfig } from './public-url.js';
import { requireBearer } from './bearer-auth.js';
import { jsonBody, parsed } from './json-body.js';
import type { AccessKeys } from '../s3/access-keys.js';
import { s3AdminRoutes } from '../s3/s3-admin.js';
import {
  handleMintUploadLink,
  uploadLinkRequest,
  type UploadLinks,
} from '../upload/upload-links.js';
import type { UploadLimits } from '../upload/upload-options.js';

export interface AdminDeps {
  /** ADMIN_TOKEN; undefined turns the admin API off (every route 401). */
  auth: GatewayConfig['auth'];
  store: MetadataStore;
  amqp: JobPublisher;
  client: GatewayNodeClient;
  /** The layout in force: the nodes checked and listed. */
  layout: LayoutView;
  blobCache: DeletionDeps['blobCache'];
  log: Logger;
  links: UploadLinks;
  limits: UploadLimits;
  urls: PublicUrlConfig;
  /** The S3 API's access keys (gateway/s3/access-keys.ts). */
  accessKeys: AccessKeys;
}

type Env = { Bindings: HttpBindings };

/** Query of `GET /admin/files`. */
export const adminFileListQuery = z
  .object({
    status: z.enum(FILE_LIST_STATUSES).optional().meta({
      description:
        'pending, aborted (uploads that never committed) or active, exhausted, expired, deleted (as GET /files/:id says).',
    }),
    expiring_within: integerParam(1, 10 * 365 * 86400, 9)
      .optional()
      .meta({
        description: 'Only live files that expire within this many seconds.',
        example: 3600,
      }),
    limit: integerParam(1, 500, 3)
      .optional()
      .meta({ description: 'Files per page (default 50).', example: 50 }),
    cursor: z
      .string()
      .max(200)
      .optional()
      .meta({ description: 'next_cursor of the previous page.' }),
  })
  .meta({ id: 'AdminFileListQuery' });

/** Body of `POST /admin/repairs` (empty or `{}`: everything). */
export const adminRepairRequest = z
  .object({
    file_id: FILE_ID_SCHEMA.optional().meta({
      description: 'Check this file’s replicas on their nodes now and repair those not right.',
    }),
  })
  .strict()
  .meta({ id: 'AdminRepairRequest' });

/** Body of `POST /admin/scrub` (empty or `{}`: every node). */
export const adminScrubRequest = z
  .object({
    node: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/)
      .optional()
      .meta({ description: 'A node id (NODES); else every node.', example: 'node1' }),
  })
  .strict()
  .meta({ id: 'AdminScrubRequest' });

/** Body of `POST /admin/upload-links`. */
export const adminUploadLinkRequest = uploadLinkRequest;

const DEFAULT_PAGE = 50;
/** Admin bodies are a few fields of JSON; nothing bigger is read. */
const MAX_BODY_BYTES = 16 * 1024;
const PUBLISH_TIMEOUT_MS = 2000;
/** Unhealthy replica rows queued by one "repair everything" (the worker's sweep takes as many). */
const REPAIR_BATCH = 1000;

/** 401 unless `Authorization: Bearer <ADMIN_TOKEN>` (constant time); always 401 when the token is unset. */
export function requireAdminToken(token: string | undefined): MiddlewareHandler {
  if (token === undefined) {
    // Both parameters declared: Hono tells middleware from handlers by their arity.
    return async (_c, _next) => {
      throw new UnauthorizedError(
        'the admin API is disabled until ADMIN_TOKEN (16+ characters) is set on the gateway',
        'ADMIN_API_DISABLED',
      );
    };
  }
  return requireBearer(
    token,
    'trove admin',
    'the admin API needs Authorization: Bearer <ADMIN_TOKEN>',
  );
}

/** Mounts the admin API on `app`: `/admin` and everything under it go through the token check first. */
export function mountAdmin(app: Hono<Env>, deps: AdminDeps): void {
  const auth = requireAdminToken(deps.auth.adminToken);
  app.use('/admin', auth);
  app.use('/admin/*', auth);
  app.route('/admin', adminRoutes(deps));
}

/** Every admin route (paths relative to /admin). Only mountAdmin mounts it. */
export function adminRoutes(deps: AdminDeps): Hono<Env> {
  const admin = new Hono<Env>();
  admin.use(
    '*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new PayloadTooLargeError(`an admin request body is at most ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );
  admin.get('/files', (c) => listFiles(deps, c));
  admin.delete('/files/:id', async (c) => {
    const file = await findFile(deps.store, c.req.param('id'));
    await deleteNow(deps, file.id, 'the admin API');
    return c.body(null, 204);
  });
  admin.post('/repairs', async (c) => {
    const req = await jsonBody(c, adminRepairRequest);
    return c.json(req.file_id ? await repairFile(deps, req.file_id) : await repairAll(deps), 202);
  });
  admin.post('/scrub', async (c) =>
    c.json(await startScrubs(deps, await jsonBody(c, adminScrubRequest)), 202),
  );
  admin.get('/queues', async (c) => c.json(await queueDepths(deps.amqp)));
  admin.post('/upload-links', async (c) =>
    handleMintUploadLink(deps, c, await jsonBody(c, adminUploadLinkRequest)),
  );
  // S3 access keys and bucket defaults (gateway/s3/s3-admin.ts).
  admin.route('/s3', s3AdminRoutes(deps));
  return admin;
}

// ── GET /admin/files ───────────────────────────────────────────────────────

/** The opaque cursor: the last file of a page, (created_at, id), as base64url JSON. */
function encodeCursor(f: FileRecord): string {
  return Buffer.from(JSON.stringify([f.createdAt, f.id])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Number.isSafeInteger(createdAt) && typeof id === 'string' && id.length <= 64)
      return { createdAt, id };
  } catch {
    // falls through to the 400
  }
  throw new BadRequestError('cursor must be a next_cursor from a previous page', 'INVALID_CURSOR');
}

async function listFiles(deps: AdminDeps, c: Context) {
  const q = parsed(adminFileListQuery, c.req.query(), 'query');
  const now = Date.now();
  const limit = q.limit ?? DEFAULT_PAGE;
  // One more than the page: whether a next page exists, without a count.
  const rows = await deps.store.listFiles({
    status: q.status,
    expiringBefore: q.expiring_within === undefined ? undefined : now + q.expiring_within * 1000,
    now,
    limit: limit + 1,
    after: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
  });
  const page = rows.slice(0, limit);
  const base = baseUrl((n) => c.req.header(n), c.req.url, deps.urls);
  return c.json({
    files: page.map((f) => adminFileJson(f, base, now)),
    next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!) : null,
  });
}

function adminFileJson(f: FileRecord, base: string, now: number) {
  // Uploads not committed (pending, aborted) are listed too, with that state as their status.
  const status = f.state === 'committed' ? fileStatus(f, now) : f.state;
  return {
    ...fileFields(f, status, base),
    delete_reason: f.deleteReason,
    processing: f.processing,
    gateway: f.owner,
  };
}

// ── POST /admin/repairs ────────────────────────────────────────────────────

function queue(deps: AdminDeps): JobPublisher {
  if (!deps.amqp.connected)
    throw new UnavailableError(
      'RabbitMQ is not reachable: no job can be queued',
      'QUEUE_UNAVAILABLE',
    );
  return deps.amqp;
}

/** What the worker's repair sweep does, now: anti-entropy of every node, a repair of every unhealthy replica. */
async function repairAll(deps: AdminDeps) {
  const amqp = queue(deps);
  const publish = (name: string, body: object) =>
    amqp.publish(name, body, { timeoutMs: PUBLISH_TIMEOUT_MS });
  await Promise.all(deps.layout.nodes().map((n) => publish(amqp.names.nodeCheck, { node: n.id })));
  const unhealthy = await deps.store.unhealthyReplicas(REPAIR_BATCH);
  const keys = new Map(unhealthy.map((r) => [r.key, r.fileId]));
  await Promise.all(
    [...keys].map(([key, fileId]) => publish(amqp.names.replicaRepair, { fileId, key })),
  );
  deps.log.info(
    { nodes: deps.layout.nodes().length, repairs: keys.size },
    'admin: repair of everything queued',
  );
  return { node_checks: deps.layout.nodes().length, repairs_queued: keys.size };
}

/**
 * One file: asks each node holding a replica whether it has the right bytes
 * (HEAD), records what it finds, and queues a repair of every blob of the
 * file with a replica not right. Unreachable nodes are reported, left as they are.
 */
async function repairFile(deps: AdminDeps, fileId: string) {
  const amqp = queue(deps);
  const file = await findFile(deps.store, fileId);
  if (file.deletedAt !== null)
    throw new GoneError('FILE_DELETED', 'this file is deleted: there is nothing to repair');
  const rows = await deps.store.replicasOf(file.id);
  const replicas = await Promise.all(
    rows.map(async (r) => {
      const node = deps.layout.node(r.node);
      const found = node
        ? await replicaOnDisk(deps.client, node, r.key, r.key === file.id ? file.sha256 : undefined)
        : 'unreachable';
      if (found !== 'unreachable' && found !== r.state)
        await deps.store.setReplicaState(r.key, r.node, found);
      return {
        key: r.key,
        node: r.node,
        state: found === 'unreachable' ? r.state : found,
        reachable: found !== 'unreachable',
      };
    }),
  );
  const broken = new Set(replicas.filter((r) => r.state !== 'ok').map((r) => r.key));
  await Promise.all(
    [...broken].map((key) =>
      amqp.publish(
        amqp.names.replicaRepair,
        { fileId: file.id, key },
        { timeoutMs: PUBLISH_TIMEOUT_MS },
      ),
    ),
  );
  deps.log.info({ id: file.id, repairs: broken.size }, 'admin: file checked');
  return { file_id: file.id, replicas, repairs_queued: broken.size };
}

/** What a node holds under `key`: ok, missing, corrupt (sha256 differs, when known), or unreachable. */
async function replicaOnDisk(
  client: GatewayNodeClient,
  node: NodeAddress,
  key: string,
  sha256: string | undefined,
): Promise<ReplicaState | 'unreachable'> {
  try {
    const blob = await client.statBlob(node, key);
    if (!blob) return 'missing';
    return sha256 === undefined || blob.sha256 === sha256 ? 'ok' : 'corrupt';
  } catch (err) {
    if (isUnreachable(err)) return 'unreachable';
    throw err;
  }
}

// ── POST /admin/scrub ──────────────────────────────────────────────────────

async function startScrubs(deps: AdminDeps, req: z.output<typeof adminScrubRequest>) {
  let targets: NodeAddress[] = deps.layout.nodes();
  if (req.node !== undefined) {
    targets = targets.filter((n) => n.id === req.node);
    if (targets.length === 0)
      throw new NotFoundError(`no storage node "${req.node}" in NODES`, 'NODE_NOT_FOUND');
  }
  const nodes = await Promise.all(
    targets.map(async (n) => {
      try {
        const answer = await deps.client.startScrub(n);
        return { node: n.id, started: answer.started, scrub: answer.scrub };
      } catch (err) {
        return { node: n.id, started: false, error: (err as Error).message };
      }
    }),
  );
  return { nodes };
}

// ── GET /admin/queues ──────────────────────────────────────────────────────

/** Messages waiting in each work queue and the dead-letter queue, and jobs held in the delay ladder. */
async function queueDepths(amqp: JobPublisher) {
  const n = amqp.names;
  const depths = async (queues: string[]) =>
    Object.fromEntries(
      await Promise.all(queues.map(async (q) => [q, await amqp.depth(q)] as const)),
    );
  const [work, deadLetters, ladder] = await Promise.all([
    depths(workQueues(n)),
    depths([n.deadLetters]),
    Promise.all(ladderSteps.map((step) => amqp.depth(n.delayQueue(step)))),
  ]);
  const delayed = ladder.some((d) => d === null) ? null : ladder.reduce((a, d) => a! + d!, 0);
  return { connected: amqp.connected, work, dead_letters: deadLetters, delayed };
}

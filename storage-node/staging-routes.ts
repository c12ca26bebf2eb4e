/**
 * The node's routes for staged uploads (storage-node/staging-store.ts):
 *   PUT    /staging/:key?offset=N  a part written at N, forwarded down the chain
 *                                 like a blob PUT (same headers, same report)
 *   POST   /staging/:key/commit    {"blob","parts":[{offset,size,sha256}…]}: the
 *                                 staged bytes become blob `blob`; 201 as a compose,
 *                                 409 STAGING_MISMATCH when they are not those parts
 *   POST   /staging/:key/cut?offset=N  the staged file cut back to N bytes
 *                                 (removed at 0): a part the gateway did not count; 204
 *   DELETE /staging/:key           204, or 404 when nothing is staged
 *   GET    /staging                {"staged":[{key,size,mtimeMs}…]}
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { BadRequestError, NotFoundError } from '../shared/errors.js';
import { SHA256_HEX } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { MAX_COMPOSE_PARTS, type Composed, type StagingListing } from '../shared/node-protocol.js';
import { replicateWrite, type ChainDeps } from './chain.js';
import type { NodeMetrics } from './metrics.js';
import { blobKey, chainParams, jsonBody, jsonBodyLimit, keyParam } from './request-params.js';
import type { StagingStore } from './staging-store.js';

const stagedPart = z.strictObject({
  offset: z.number().int().nonnegative(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(SHA256_HEX, 'must be 64 lowercase hex digits'),
});

/** Strict: the parts must be the upload's, end to end from byte 0. */
const commitRequest = z
  .strictObject({ blob: blobKey, parts: z.array(stagedPart).min(1).max(MAX_COMPOSE_PARTS) })
  .refine(
    (r) =>
      r.parts.every(
        (p, i) => p.offset === (i === 0 ? 0 : r.parts[i - 1]!.offset + r.parts[i - 1]!.size),
      ),
    { message: 'parts must follow each other from offset 0', path: ['parts'] },
  );

function offsetParam(c: Context): number {
  const offset = Number(c.req.query('offset'));
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new BadRequestError('offset must be a whole number of bytes', 'INVALID_PARAMETER');
  return offset;
}

export interface StagingRouteDeps {
  id: string;
  staging: StagingStore;
  log: Logger;
  metrics: NodeMetrics;
}

export function stagingRoutes(
  app: Hono<{ Bindings: HttpBindings }>,
  deps: StagingRouteDeps,
  chainDeps: ChainDeps,
): void {
  app.put('/staging/:key', async (c) => {
    const key = keyParam(c);
    const offset = offsetParam(c);
    const { chain, hop, expectedSha256, length } = chainParams(c, deps.id);
    if (expectedSha256 !== undefined)
      throw new BadRequestError('a staged part is checked by the commit, not by a sha256 header');
    // Throws BlobNotStoredError, answered with the same report, when this node could not store it.
    const report = await replicateWrite(chainDeps, {
      key,
      body: c.env.incoming,
      chain,
      expectedSha256: undefined,
      contentLength: length,
      hop,
      offset,
    });
    return c.json(report, 201);
  });

  app.post('/staging/:key/commit', jsonBodyLimit('a commit body'), async (c) => {
    const key = keyParam(c);
    const req = await jsonBody(c, commitRequest, '{"blob":"key","parts":[{offset,size,sha256}…]}');
    const info = await deps.staging.commit(key, req.blob, req.parts);
    deps.metrics.blobComposed(info.size);
    return c.json(
      { node: deps.id, key: req.blob, size: info.size, sha256: info.sha256 } satisfies Composed,
      201,
    );
  });

  app.post('/staging/:key/cut', async (c) => {
    await deps.staging.cut(keyParam(c), offsetParam(c));
    return c.body(null, 204);
  });

  app.delete('/staging/:key', async (c) => {
    const key = keyParam(c);
    if (!(await deps.staging.delete(key)))
      throw new NotFoundError(`nothing staged as ${key}`, 'NO_SUCH_STAGING');
    return c.body(null, 204);
  });

  app.get('/staging', async (c) =>
    c.json({ staged: await deps.staging.list() } satisfies StagingListing),
  );
}

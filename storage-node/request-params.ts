/**
 * What the node's routes read from a request, validated: 400 naming the
 * problem otherwise.
 */
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { BadRequestError, PayloadTooLargeError } from '../shared/errors.js';
import { SHA256_HEX, isValidKey } from '../shared/keys.js';
import type { NodeAddress } from '../shared/config.js';
import { H, parseChain } from '../shared/node-protocol.js';

const MAX_HOPS = 16;

export function keyParam(c: Context): string {
  const key = c.req.param('key') ?? '';
  if (!isValidKey(key))
    throw new BadRequestError('a key is 1-160 characters of [A-Za-z0-9._-]', 'INVALID_KEY');
  return key;
}

/** A chained write's headers: the rest of the chain, this hop, the expected sha256 and the length. */
export interface ChainParams {
  chain: NodeAddress[];
  hop: number;
  expectedSha256: string | undefined;
  length: number | undefined;
}

export function chainParams(c: Context, selfId: string): ChainParams {
  const chain = parseChain(c.req.header(H.chain));
  if (!chain) throw new BadRequestError(`${H.chain} must be a list of id=http://host:port`);
  if (chain.some((n) => n.id === selfId))
    throw new BadRequestError(`${H.chain} must not include this node`);
  const hop = Number(c.req.header(H.hop) ?? 0);
  if (!Number.isInteger(hop) || hop < 0 || hop > MAX_HOPS)
    throw new BadRequestError(`${H.hop} must be 0-${MAX_HOPS}`);
  const expectedSha256 = c.req.header(H.sha256);
  if (expectedSha256 !== undefined && !SHA256_HEX.test(expectedSha256)) {
    throw new BadRequestError(`${H.sha256} must be 64 lowercase hex digits`);
  }
  const header = c.req.header('content-length');
  const length = header === undefined ? undefined : Number(header);
  return { chain, hop, expectedSha256, length };
}

/** A JSON body read against `schema`; `shape` is shown when it is not JSON at all. */
export async function jsonBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  shape: string,
): Promise<z.output<S>> {
  let value: unknown;
  try {
    value = JSON.parse(await c.req.text());
  } catch {
    throw new BadRequestError(`the body must be JSON: ${shape}`, 'INVALID_JSON');
  }
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || 'body'}: ${i.message}`);
  throw new BadRequestError(`invalid body: ${problems.join('; ')}`, 'INVALID_PARAMETER');
}

export const blobKey = z
  .string()
  .refine(isValidKey, 'not a valid key (1-160 characters of [A-Za-z0-9._-])');

/** A JSON body at most: MAX_COMPOSE_PARTS keys of 160 characters, quoted, and room to spare. */
const MAX_JSON_BODY = 2 * 1024 * 1024;

/** 413 for a JSON body over MAX_JSON_BODY; `what` names it. */
export function jsonBodyLimit(what: string) {
  return bodyLimit({
    maxSize: MAX_JSON_BODY,
    onError: () => {
      throw new PayloadTooLargeError(`${what} is at most ${MAX_JSON_BODY} bytes`);
    },
  });
}

/**
 * What the features' OpenAPI entries share (each room keeps its own beside its
 * handlers, in <room>-openapi.ts; openapi.ts assembles them): the error body
 * every refusal answers with, the ways an answer is described (JSON, bytes,
 * HTML), the upload token's security, the file id parameter. A schema only one
 * feature answers with lives in that feature's entries; the file object, which
 * uploads answer with too, in files/files-openapi.ts.
 */
import type { RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { FILE_ID_SCHEMA } from '../../shared/keys.js';

export type Responses = RouteConfig['responses'];

export const ERROR_BODY = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable, machine-readable: FILE_NOT_FOUND, …' }),
      message: z.string().meta({ description: 'For people: says what was wrong.' }),
    }),
  })
  .meta({
    id: 'Error',
    description: 'Every error answer.',
    example: { error: { code: 'FILE_NOT_FOUND', message: 'no such file' } },
  });

export const BINARY = { type: 'string', format: 'binary' } as const;

export const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** An error answer (`{"error":{"code","message"}}`); `codes` are the error codes it may carry. */
export const error = (codes: string) => json(ERROR_BODY, codes);

export const binary = (types: string[], description: string) => ({
  description,
  content: Object.fromEntries(types.map((t) => [t, { schema: BINARY }])),
});

export const html = (description: string) => binary(['text/html'], description);

export const RATE_LIMITED = error(
  'RATE_LIMITED: too many requests from this client (Retry-After says when)',
);

/** The routes that take an upload token when the gateway has one (UPLOAD_TOKEN). */
export const UPLOAD_SECURITY: Record<string, string[]>[] = [{ uploadToken: [] }, {}];
export const UNAUTHORIZED = error(
  'UNAUTHORIZED: UPLOAD_TOKEN is set and the request does not carry it',
);

export const ID_PARAMS = z.object({ id: FILE_ID_SCHEMA });

/** A description ending with a curl command: the example request of an operation without parameters. */
export const withCurl = (text: string, command: string) =>
  [text, `\`\`\`sh\n${command}\n\`\`\``].filter(Boolean).join('\n\n');

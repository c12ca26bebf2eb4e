/**
 * Validation of the admin API's requests (admin.ts, gateway/s3/s3-admin.ts):
 * a zod schema's failure as one 400 naming the first problems.
 */
import type { Context } from 'hono';
import type { z } from 'zod';
import { BadRequestError } from '../../shared/errors.js';

export function parsed<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || where}: ${i.message}`);
  throw new BadRequestError(`invalid ${where}: ${problems.join('; ')}`, 'INVALID_PARAMETER');
}

/** The request's JSON body (an empty one is `{}`), validated. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  let value: unknown = {};
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch {
      throw new BadRequestError('the body must be JSON', 'INVALID_JSON');
    }
  }
  return parsed(schema, value, 'body');
}

/**
 * Upload options (`max_downloads`, `ttl`), from the query string or from form
 * fields, validated with an error that names the option. The zod schemas
 * that validate them are also what /openapi.json documents them from.
 */
import { z } from 'zod';
import type { GatewayConfig } from '../../shared/config.js';
import { BadRequestError } from '../../shared/errors.js';
import { integerParam } from '../../shared/string-params.js';

/** DEFAULT_MAX_DOWNLOADS, MAX_DOWNLOADS_LIMIT, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS: the `limits` section of the configuration. */
export type UploadLimits = GatewayConfig['limits'];

export interface UploadOptions {
  /** 0 means unlimited. */
  maxDownloads: number;
  ttlSeconds: number;
}

export const OPTION_NAMES = ['max_downloads', 'ttl'] as const;
export type OptionName = (typeof OPTION_NAMES)[number];

export function isOptionName(name: string): name is OptionName {
  return (OPTION_NAMES as readonly string[]).includes(name);
}

const TTL_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };
const TTL = /^(\d{1,12})\s*([smhdSMHD]?)$/;

/** Seconds from `90`, `30m`, `2h`, `7d` (already matched by TTL). */
function ttlSeconds(text: string): number {
  const [, amount, unit] = TTL.exec(text)!;
  return Number(amount) * TTL_UNITS[unit!.toLowerCase()]!;
}

function buildSchemas(limits: UploadLimits) {
  const maxDownloads = integerParam(0, limits.maxDownloadsLimit, 16).meta({
    description: `Downloads the link allows; 0 = unlimited. Default ${limits.defaultMaxDownloads}.`,
    example: 5,
  });
  const ttl = z
    .string()
    .trim()
    .regex(TTL)
    .transform(ttlSeconds)
    .pipe(z.number().int().min(1).max(limits.maxTtlSeconds))
    .meta({
      description: `Lifetime in seconds, or with a unit (30m, 2h, 7d); from 1 second to ${limits.maxTtlSeconds} seconds. Default ${limits.defaultTtlSeconds}.`,
      example: '2h',
    });
  return {
    max_downloads: maxDownloads,
    ttl,
    /** The query string of an upload (other parameters are ignored). */
    query: z.object({ max_downloads: maxDownloads.optional(), ttl: ttl.optional() }),
  };
}

export type UploadOptionSchemas = ReturnType<typeof buildSchemas>;

const schemasByLimits = new WeakMap<UploadLimits, UploadOptionSchemas>();

/**
 * The schemas for these limits, built once per limits object: the gateway's
 * handlers and its /openapi.json use the very same objects.
 */
export function uploadOptionSchemas(limits: UploadLimits): UploadOptionSchemas {
  let schemas = schemasByLimits.get(limits);
  if (!schemas) schemasByLimits.set(limits, (schemas = buildSchemas(limits)));
  return schemas;
}

/** What a valid value looks like, as the 400 says it. */
function expected(name: OptionName, limits: UploadLimits): string {
  return name === 'max_downloads'
    ? `an integer from 0 (unlimited) to ${limits.maxDownloadsLimit}`
    : `seconds (or 30m, 2h, 7d) from 1 to ${limits.maxTtlSeconds}`;
}

/** Validates one option's raw value; throws 400 naming it. */
export function parseOption(name: OptionName, raw: string, limits: UploadLimits): number {
  const parsed = uploadOptionSchemas(limits)[name].safeParse(raw);
  if (!parsed.success) {
    throw new BadRequestError(
      `${name} must be ${expected(name, limits)}, got "${raw.slice(0, 40)}"`,
      'INVALID_OPTION',
    );
  }
  return parsed.data;
}

/** Combines validated values with the defaults. */
export function resolveOptions(
  given: Partial<Record<OptionName, number>>,
  limits: UploadLimits,
): UploadOptions {
  return {
    maxDownloads: given.max_downloads ?? limits.defaultMaxDownloads,
    ttlSeconds: given.ttl ?? limits.defaultTtlSeconds,
  };
}

/** Reads and validates the options present in a query string. */
export function optionsFromQuery(
  query: Record<string, string>,
  limits: UploadLimits,
): Partial<Record<OptionName, number>> {
  const given: Partial<Record<OptionName, number>> = {};
  for (const name of OPTION_NAMES) {
    const raw = query[name];
    if (raw !== undefined) given[name] = parseOption(name, raw, limits);
  }
  return given;
}

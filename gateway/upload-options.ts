/**
 * Upload options (`max_downloads`, `ttl`), from the query string or from form
 * fields, validated with an error that names the option.
 */
import { BadRequestError } from '../shared/errors.js';

export interface UploadLimits {
  defaultMaxDownloads: number;
  maxDownloadsLimit: number;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
}

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

/** Validates one option's raw value; throws 400 naming it. */
export function parseOption(name: OptionName, raw: string, limits: UploadLimits): number {
  const text = raw.trim();
  if (name === 'max_downloads') {
    const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n > limits.maxDownloadsLimit) {
      throw new BadRequestError(
        `max_downloads must be an integer from 0 (unlimited) to ${limits.maxDownloadsLimit}, got "${raw.slice(0, 40)}"`,
        'INVALID_OPTION',
      );
    }
    return n;
  }
  const match = /^(\d{1,12})\s*([smhd]?)$/i.exec(text);
  const seconds = match ? Number(match[1]) * TTL_UNITS[match[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > limits.maxTtlSeconds) {
    throw new BadRequestError(
      `ttl must be seconds (or 30m, 2h, 7d) from 1 to ${limits.maxTtlSeconds}, got "${raw.slice(0, 40)}"`,
      'INVALID_OPTION',
    );
  }
  return seconds;
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

/**
 * Zod schemas for option values that arrive as text (query strings, form
 * fields) but mean a number or a choice. Each one reads the text strictly and
 * is documented by /openapi.json as what it means (an integer in bounds, one
 * of a list), so the schema that validates a request is the one its
 * documentation is generated from.
 */
import { z } from 'zod';

/** Decimal digits (spaces around them allowed) as a number; anything else NaN, which z.number() refuses. */
function digitsOrNaN(maxDigits: number) {
  const digits = new RegExp(`^\\d{1,${maxDigits}}$`);
  return (raw: unknown) => {
    const text = String(raw).trim();
    return digits.test(text) ? Number(text) : NaN;
  };
}

/**
 * An integer from `min` to `max` written in plain digits (at most
 * `maxDigits`): no sign, no decimals, no exponent (`1e3` is refused).
 */
export function integerParam(min: number, max: number, maxDigits = 9) {
  return z.preprocess(digitsOrNaN(maxDigits), z.number().int().min(min).max(max));
}

/**
 * One of `values`, case-insensitive, spaces around it ignored. `aliases`
 * maps other accepted spellings to a value (`jpg` → `jpeg`).
 */
export function choiceParam<const T extends readonly [string, ...string[]]>(
  values: T,
  aliases: Record<string, T[number]> = {},
) {
  return z.preprocess((raw) => {
    const text = String(raw).trim().toLowerCase();
    return Object.hasOwn(aliases, text) ? aliases[text] : text;
  }, z.enum(values));
}

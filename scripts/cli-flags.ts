/**
 * What the project's command-line scripts (bench, drill, metadata:copy,
 * cluster) share: strict flag parsing, whole-number flags, and the error that
 * means "print the usage and exit 2".
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type FlagOptions = NonNullable<ParseArgsConfig['options']>;

/** A flag the script cannot take: its entry point prints the message and the usage. */
export class UsageError extends Error {}

/** `argv` parsed against `options`: unknown flags, missing values and positionals are UsageErrors. */
export function parseFlags<const O extends FlagOptions>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * `argv` parsed against `options`, with the words that are not flags (a
 * command's arguments) in order; unknown flags and missing values are
 * UsageErrors, as in parseFlags.
 */
export function parseFlagsAndWords<const O extends FlagOptions>(argv: string[], options: O) {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: true,
    });
    return { values, words: positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A whole-number flag from `min` (1) to `max`, or `fallback` when it is not given. */
export function intFlag(
  name: string,
  text: string | undefined,
  fallback: number,
  max: number,
  min = 1,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name}: "${text}" is not a whole number from ${min} to ${max}`);
  }
  return value;
}

import { describe, expect, it } from 'vitest';
import { bearerMatches } from './bearer-auth.js';

describe('bearerMatches', () => {
  it('accepts the exact token as a Bearer credential, any case of the scheme', () => {
    expect(bearerMatches('Bearer s3cret-token', 's3cret-token')).toBe(true);
    expect(bearerMatches('bearer s3cret-token', 's3cret-token')).toBe(true);
  });

  it('refuses a missing, empty, wrong, longer or differently-schemed credential', () => {
    expect(bearerMatches(undefined, 's3cret-token')).toBe(false);
    expect(bearerMatches('', 's3cret-token')).toBe(false);
    expect(bearerMatches('Bearer ', 's3cret-token')).toBe(false);
    expect(bearerMatches('Bearer s3cret-tokex', 's3cret-token')).toBe(false);
    expect(bearerMatches('Bearer s3cret-token2', 's3cret-token')).toBe(false);
    expect(bearerMatches('Basic s3cret-token', 's3cret-token')).toBe(false);
    expect(bearerMatches('s3cret-token', 's3cret-token')).toBe(false);
  });
});

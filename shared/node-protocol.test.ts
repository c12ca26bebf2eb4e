import { describe, expect, it } from 'vitest';
import { formatChain, parseChain, parseComposeAnswer, parsePutReport } from './node-protocol.js';

describe('the chain header', () => {
  const chain = [
    { id: 'node2', url: 'http://127.0.0.1:9002' },
    { id: 'node3', url: 'https://10.0.0.3:9003' },
  ];

  it('reads back what it writes', () => {
    expect(formatChain(chain)).toBe('node2=http://127.0.0.1:9002,node3=https://10.0.0.3:9003');
    expect(parseChain(formatChain(chain))).toEqual(chain);
  });

  it('is an empty chain when absent or empty', () => {
    expect(parseChain(undefined)).toEqual([]);
    expect(parseChain('')).toEqual([]);
    expect(formatChain([])).toBe('');
  });

  it('is malformed with a bad id, a bad url or no `=`', () => {
    for (const header of [
      'node2',
      '=http://127.0.0.1:9002',
      'no de=http://127.0.0.1:9002',
      'node2=ftp://127.0.0.1:9002',
      'node2=http://127.0.0.1:9002/path',
      'node2=http://127.0.0.1:9002,',
    ])
      expect(parseChain(header), header).toBeUndefined();
  });
});

describe('the PUT report', () => {
  it('is read from any answer with a replicas array, under the key asked for', () => {
    const replicas = [
      { node: 'node1', ok: true, sha256: 'a'.repeat(64), size: 3 },
      { node: 'node2', ok: false, error: 'not reached' },
    ];
    expect(parsePutReport('k', JSON.stringify({ key: 'k', replicas }))).toEqual({
      key: 'k',
      replicas,
    });
  });

  it('is not read from an error body or from text that is not JSON', () => {
    expect(
      parsePutReport('k', JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'no' } })),
    ).toBeUndefined();
    expect(parsePutReport('k', 'Bad Gateway')).toBeUndefined();
  });
});

describe('the compose answer', () => {
  const sha256 = 'a'.repeat(64);

  it('is the blob on a 201, the missing parts on a 409 MISSING_PARTS', () => {
    const composed = { node: 'n1', key: 'k', size: 3, sha256 };
    expect(parseComposeAnswer(201, JSON.stringify(composed))).toEqual({
      ok: true,
      size: 3,
      sha256,
    });
    const missing = { error: { code: 'MISSING_PARTS', message: 'm' }, missing: ['p1', 'p2'] };
    expect(parseComposeAnswer(409, JSON.stringify(missing))).toEqual({
      ok: false,
      missing: ['p1', 'p2'],
    });
  });

  it('is nothing for any other answer', () => {
    const mismatch = { error: { code: 'SHA256_MISMATCH', message: 'm' } };
    expect(parseComposeAnswer(422, JSON.stringify(mismatch))).toBeUndefined();
    expect(parseComposeAnswer(409, JSON.stringify({ error: { code: 'OTHER' } }))).toBeUndefined();
    expect(
      parseComposeAnswer(409, JSON.stringify({ error: { code: 'MISSING_PARTS' }, missing: [1] })),
    ).toBeUndefined();
    expect(parseComposeAnswer(201, 'not json')).toBeUndefined();
    expect(parseComposeAnswer(500, JSON.stringify({ size: 3, sha256 }))).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { formatChain, parseChain, parsePutReport } from './node-protocol.js';

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

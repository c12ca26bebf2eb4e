import { describe, expect, it } from 'vitest';
import { compareKeys } from '../../shared/s3-names.js';
import {
  commonPrefixOf,
  decodeContinuationToken,
  encodeContinuationToken,
  listObjectsV1,
  listObjectsV2,
  listPage,
  listV1Request,
  listV2Request,
  parseMaxKeys,
  type KeyScan,
  type ScanQuery,
} from './listing.js';
import { S3Error } from './s3-errors.js';

interface Item {
  key: string;
}

/** A key source over a sorted array, which records what it was asked and how many rows it read. */
function source(keys: string[]) {
  const sorted = [...new Set(keys)].sort(compareKeys).map((key) => ({ key }));
  const calls: ScanQuery[] = [];
  let rows = 0;
  const scan: KeyScan<Item> = async (query) => {
    calls.push(query);
    const out = sorted
      .filter(({ key }) => {
        const order = compareKeys(key, query.startAfter);
        return (order > 0 || (query.inclusive && order === 0)) && key.startsWith(query.prefix);
      })
      .slice(0, query.limit);
    rows += out.length;
    return out;
  };
  return { scan, calls, rows: () => rows };
}

type Entry = { key: string } | { prefix: string };

/** Every entry of a listing after `startAfter`, by brute force. */
function bruteForce(
  keys: string[],
  prefix: string,
  delimiter: string,
  startAfter: string,
): Entry[] {
  const entries: Entry[] = [];
  const seen = new Set<string>();
  for (const key of [...new Set(keys)].sort(compareKeys)) {
    if (!key.startsWith(prefix) || compareKeys(key, startAfter) <= 0) continue;
    const rolled = commonPrefixOf(key, prefix, delimiter);
    if (rolled === undefined) entries.push({ key });
    // A prefix at or before the start was on an earlier page.
    else if (!seen.has(rolled) && compareKeys(rolled, startAfter) > 0) {
      seen.add(rolled);
      entries.push({ prefix: rolled });
    }
  }
  return entries;
}

function pageEntries(page: { contents: Item[]; commonPrefixes: string[] }): Entry[] {
  const entries: Entry[] = [
    ...page.contents.map(({ key }) => ({ key })),
    ...page.commonPrefixes.map((prefix) => ({ prefix })),
  ];
  const name = (entry: Entry) => ('key' in entry ? entry.key : entry.prefix);
  return entries.sort((a, b) => compareKeys(name(a), name(b)));
}

describe('listPage', () => {
  const keys = ['a', 'b/1', 'b/2', 'b/3/x', 'b0', 'c/1', 'd'];

  it('rolls keys into common prefixes, which count toward max-keys', async () => {
    const { scan } = source(keys);
    const page = await listPage(scan, { prefix: '', delimiter: '/', maxKeys: 3, startAfter: '' });
    expect(page.contents.map((item) => item.key)).toEqual(['a', 'b0']);
    expect(page.commonPrefixes).toEqual(['b/']);
    expect(page).toMatchObject({ isTruncated: true, last: 'b0' });
  });

  it('jumps past a common prefix without skipping the key just after it', async () => {
    // More keys under b/ than the first batch reads, so that the listing has to jump.
    const under = Array.from({ length: 40 }, (_, i) => `b/${String(i).padStart(2, '0')}`);
    const { scan, calls } = source([...keys, ...under]);
    const page = await listPage(scan, { prefix: 'b', delimiter: '/', maxKeys: 10, startAfter: '' });
    expect(page.commonPrefixes).toEqual(['b/']);
    expect(page.contents.map((item) => item.key)).toEqual(['b0']);
    expect(calls.some((call) => call.startAfter === 'b0' && call.inclusive)).toBe(true);
  });

  it('resumes after a common prefix given as the marker', async () => {
    const { scan } = source(['asdf', 'boo/bar', 'boo/baz/xyzzy', 'cquux/thud', 'cquux/bla']);
    const page = await listObjectsV1(scan, {
      prefix: '',
      delimiter: '/',
      maxKeys: 1,
      marker: 'boo/',
    });
    expect(page).toMatchObject({ commonPrefixes: ['cquux/'], isTruncated: false });
    expect(page.nextMarker).toBeUndefined();
  });

  it('reads few rows under a large common prefix', async () => {
    const many = Array.from({ length: 5000 }, (_, i) => `big/${String(i).padStart(5, '0')}`);
    const { scan, rows } = source([...many, 'c', 'd/1', 'e']);
    const page = await listPage(scan, {
      prefix: '',
      delimiter: '/',
      maxKeys: 1000,
      startAfter: '',
    });
    expect(page.commonPrefixes).toEqual(['big/', 'd/']);
    expect(page.contents.map((item) => item.key)).toEqual(['c', 'e']);
    expect(rows()).toBeLessThan(50);
  });

  it('answers max-keys=0 with an empty page that is not truncated', async () => {
    const { scan, calls } = source(keys);
    const page = await listPage(scan, { prefix: '', maxKeys: 0, startAfter: '' });
    expect(page).toEqual({ contents: [], commonPrefixes: [], isTruncated: false });
    expect(calls).toEqual([]);
  });

  it('is not truncated when the only keys left roll into the last prefix', async () => {
    const { scan } = source(['a/1', 'a/2', 'a/3']);
    const page = await listPage(scan, { prefix: '', delimiter: '/', maxKeys: 1, startAfter: '' });
    expect(page).toMatchObject({ commonPrefixes: ['a/'], isTruncated: false });
  });

  it('fails on a scan that ignores its bound rather than looping', async () => {
    const stuck: KeyScan<Item> = async ({ limit }) =>
      Array.from({ length: limit }, (_, i) => ({ key: `k${i}` }));
    await expect(listPage(stuck, { prefix: '', maxKeys: 5, startAfter: 'k3' })).rejects.toThrow(
      /before its bound/,
    );
  });

  it('ends after a prefix that nothing can follow', async () => {
    const { scan } = source(['\u{10FFFF}/1', '\u{10FFFF}/2']);
    const page = await listPage(scan, {
      prefix: '\u{10FFFF}',
      delimiter: '/',
      maxKeys: 5,
      startAfter: '',
    });
    expect(page).toMatchObject({ commonPrefixes: ['\u{10FFFF}/'], isTruncated: false });
  });
});

describe('listing, model-based', () => {
  const alphabet = ['a', 'b', '/', '-', 'é', '\uE000', '\u{1F600}', '\u007f'];
  const randomKey = () =>
    Array.from({ length: 1 + Math.floor(Math.random() * 5) }, () => pick(alphabet)).join('');
  const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

  it('pages through the brute-force listing with no duplicates or gaps', async () => {
    for (let round = 0; round < 300; round++) {
      const keys = Array.from({ length: Math.floor(Math.random() * 60) }, randomKey);
      const prefix = pick(['', '', 'a', 'a/', 'b', '\u{1F600}', 'é/']);
      const delimiter = pick(['', '/', '/', 'b', 'a/', '\u{1F600}', '-']);
      const maxKeys = pick([1, 2, 3, 7, 1000]);
      const startAfter = pick(['', '', 'a', 'b/', keys[0] ?? '']);
      const expected = bruteForce(keys, prefix, delimiter, startAfter);
      const { scan } = source(keys);
      const seen: Entry[] = [];
      let token: string | undefined;
      for (let pages = 0; ; pages++) {
        expect(pages).toBeLessThanOrEqual(expected.length);
        const page = await listObjectsV2(scan, {
          prefix,
          delimiter,
          maxKeys,
          startAfter,
          continuationToken: token,
          fetchOwner: false,
        });
        expect(page.keyCount).toBeLessThanOrEqual(maxKeys);
        seen.push(...pageEntries(page));
        if (!page.isTruncated) break;
        expect(page.keyCount).toBe(maxKeys);
        token = page.nextContinuationToken;
        expect(token).toBeDefined();
      }
      expect(seen, JSON.stringify({ keys, prefix, delimiter, maxKeys, startAfter })).toEqual(
        expected,
      );
    }
  });

  it('pages the same with v1 markers (NextMarker with a delimiter, else the last key)', async () => {
    for (let round = 0; round < 200; round++) {
      const keys = Array.from({ length: Math.floor(Math.random() * 40) }, randomKey);
      const prefix = pick(['', 'a', 'b']);
      const delimiter = pick(['', '/', 'a']);
      const maxKeys = pick([1, 2, 5]);
      const expected = bruteForce(keys, prefix, delimiter, '');
      const { scan } = source(keys);
      const seen: Entry[] = [];
      let marker = '';
      for (;;) {
        const page = await listObjectsV1(scan, { prefix, delimiter, maxKeys, marker });
        seen.push(...pageEntries(page));
        if (!page.isTruncated) break;
        if (delimiter) expect(page.nextMarker).toBe(page.last);
        else expect(page.nextMarker).toBeUndefined();
        marker = page.nextMarker ?? page.contents[page.contents.length - 1]!.key;
      }
      expect(seen).toEqual(expected);
    }
  });
});

describe('list requests', () => {
  it('reads v1 and v2 parameters', () => {
    const v1 = listV1Request(
      new Map([
        ['prefix', 'p/'],
        ['delimiter', '/'],
        ['marker', 'p/a'],
        ['max-keys', '5000'],
        ['encoding-type', 'url'],
      ]),
    );
    expect(v1).toEqual({
      prefix: 'p/',
      delimiter: '/',
      maxKeys: 1000,
      marker: 'p/a',
      encodingType: 'url',
    });
    const token = encodeContinuationToken('p/b');
    const v2 = listV2Request(
      new Map([
        ['list-type', '2'],
        ['continuation-token', token],
        ['fetch-owner', 'true'],
        ['delimiter', ''],
      ]),
    );
    expect(v2).toMatchObject({
      prefix: '',
      delimiter: undefined,
      maxKeys: 1000,
      continuationToken: token,
      fetchOwner: true,
    });
  });

  it('refuses a bad max-keys, encoding-type or continuation token', () => {
    const refused = (fn: () => unknown) => {
      expect(fn).toThrow(S3Error);
      try {
        fn();
      } catch (err) {
        expect(err).toMatchObject({ code: 'InvalidArgument', status: 400 });
      }
    };
    refused(() => parseMaxKeys('-1'));
    refused(() => parseMaxKeys('ten'));
    expect(parseMaxKeys('0')).toBe(0);
    refused(() => listV1Request(new Map([['encoding-type', 'base64']])));
    for (const token of [
      '',
      'not a token',
      'abc',
      Buffer.from('x').toString('base64url'),
      encodeContinuationToken('k') + '=',
    ]) {
      refused(() => listV2Request(new Map([['continuation-token', token]])));
    }
  });

  it('round-trips continuation tokens of any key', () => {
    for (const key of ['', 'a/b', 'é & <x>', '\u{1F600}/', 'x'.repeat(1024)]) {
      const token = encodeContinuationToken(key);
      expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeContinuationToken(token)).toBe(key);
    }
  });
});

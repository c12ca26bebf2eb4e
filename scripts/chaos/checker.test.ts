import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkHistory,
  excerpt,
  formatOp,
  type CheckName,
  type CheckOptions,
  type CheckResult,
} from './checker.js';
import type { FinalFile, FinalState, Op, Phase } from './history.js';

// Times in the builders are ms after T0; every file is SIZE bytes: its key repeated.
const T0 = 1_700_000_000_000;
const SIZE = 100;
const SLACK = 1000;
const HOUR_S = 3600;

const content = (key: string) => Buffer.alloc(SIZE, key);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const opts: CheckOptions = {
  clockSlackMs: SLACK,
  contentDigest: (key, start, end) => sha(content(key).subarray(start, end + 1)),
};
const id = (key: string) => `f-${key}`;

/** A status, or `timeout` for no answer at all. */
type Answer = number | 'timeout';

function op(kind: Op['kind'], key: string, at: number, done: number, answer: Answer): Op {
  const outcome = answer === 'timeout' || answer >= 500 ? 'info' : answer >= 400 ? 'fail' : 'ok';
  return {
    index: -1,
    process: 'c1',
    kind,
    phase: 'run',
    key,
    gateway: 'http://g1',
    invoke: T0 + at,
    complete: T0 + done,
    outcome,
    ...(answer === 'timeout' ? { error: 'timeout' } : { status: answer }),
  };
}

/** An upload of `key`; `ok` ones get the file id `f-<key>`. */
function up(o: { key: string; max?: number; ttl?: number; at?: number; status?: Answer }): Op {
  const at = o.at ?? 0;
  const u = op('upload', o.key, at, at + 10, o.status ?? 201);
  const ttl = o.ttl ?? HOUR_S;
  Object.assign(u, { size: SIZE, maxDownloads: o.max ?? 0, ttlSeconds: ttl });
  if (u.outcome === 'ok') {
    Object.assign(u, {
      file: id(o.key),
      sha256: sha(content(o.key)),
      expiresAt: u.complete + ttl * 1000,
    });
  }
  return u;
}

interface ReadOpts {
  key: string;
  at: number;
  done?: number;
  status?: Answer;
  code?: string;
  phase?: Phase;
  process?: string;
}

/** A download; a 2xx carries `body` (default: the right bytes), cut after `cut` bytes if given. */
function dl(
  o: ReadOpts & { left?: number | null; range?: [number, number]; body?: Buffer; cut?: number },
): Op {
  const d = read('download', o);
  if (o.range) d.range = o.range;
  if (d.outcome !== 'ok') return d;
  const whole = content(o.key);
  const sent =
    o.body ?? (d.status === 206 && o.range ? whole.subarray(o.range[0], o.range[1] + 1) : whole);
  return {
    ...d,
    ...body(o.cut === undefined ? sent : sent.subarray(0, o.cut), o.cut === undefined),
    downloadsLeft: o.left ?? null,
  };
}

/** A thumbnail read; its ETag is the body's sha256 unless given. */
function th(o: ReadOpts & { body?: Buffer; etag?: string }): Op {
  const t = read('thumbnail', o);
  if (t.outcome !== 'ok') return t;
  const b = o.body ?? Buffer.from(`thumb of ${o.key}`);
  return { ...t, ...body(b, true), etag: o.etag ?? `"${sha(b)}"` };
}

function del(o: { key: string; at: number; done?: number; status?: Answer }): Op {
  return { ...op('delete', o.key, o.at, o.done ?? o.at + 10, o.status ?? 204), file: id(o.key) };
}

function read(kind: 'download' | 'thumbnail', o: ReadOpts): Op {
  const status = o.status ?? (kind === 'download' && 'range' in o && o.range ? 206 : 200);
  const r = op(kind, o.key, o.at, o.done ?? o.at + 10, status);
  return {
    ...r,
    file: id(o.key),
    phase: o.phase ?? 'run',
    process: o.process ?? (o.phase === 'final' ? 'final' : 'c1'),
    ...(o.code ? { code: o.code } : {}),
  };
}

const body = (b: Buffer, complete: boolean) => ({
  sha256: sha(b),
  bytes: b.length,
  bodyComplete: complete,
});

/** The ops in invoke order, indexed. */
function history(...ops: Op[]): Op[] {
  return ops
    .map((o, i) => ({ o, i }))
    .sort((a, b) => a.o.invoke - b.o.invoke || a.i - b.i)
    .map(({ o }, index) => ({ ...o, index }));
}

const HEALED = 600_000;

/** Every `ok` upload alive on n1..n3, its downloads_used the count of its `ok` downloads, unless `files` says. */
function finalState(
  ops: Op[],
  o: { files?: Record<string, Partial<FinalFile> | null>; redundantAt?: number | null } = {},
): FinalState {
  const files: FinalFile[] = [];
  for (const u of ops.filter((x) => x.kind === 'upload' && x.outcome === 'ok')) {
    const over = o.files?.[u.key];
    if (over === null) continue;
    const used = ops.filter(
      (x) => x.file === u.file && x.kind === 'download' && x.outcome === 'ok',
    ).length;
    files.push({
      file: u.file!,
      status: 'active',
      maxDownloads: u.maxDownloads ?? 0,
      downloadsUsed: used,
      expiresAt: u.expiresAt!,
      placement: ['n1', 'n2', 'n3'],
      verified: ['n1', 'n2', 'n3'],
      ...over,
    });
  }
  const redundantAt = o.redundantAt === null ? undefined : T0 + (o.redundantAt ?? HEALED + 5000);
  return { healedAt: T0 + HEALED, redundantAt, replicationFactor: 3, files };
}

function results(ops: Op[], final = finalState(ops)): Map<CheckName, CheckResult> {
  return new Map(checkHistory(ops, final, opts).map((r) => [r.check, r]));
}

/** The messages of `check`'s violations. */
function violations(check: CheckName, ops: Op[], final = finalState(ops)): string[] {
  return results(ops, final)
    .get(check)!
    .violations.map((v) => v.message);
}

describe('a happy history', () => {
  // a: max 3, two concurrent grants (lefts 2 and 1), a timed-out download that may have
  // taken the 3rd, so the final 410 DOWNLOAD_LIMIT_REACHED is fair.
  // b: unlimited, ranges, a cut body, a 503, thumbnails (one not ready yet).
  // c: deleted, then refused. d: expired, one download started just before.
  // e: an upload with no answer: its id is unknown. g: unreadable at the end, copies verified.
  const ops = history(
    up({ key: 'a', max: 3 }),
    up({ key: 'b' }),
    up({ key: 'c' }),
    up({ key: 'd', ttl: 5 }),
    up({ key: 'e', status: 'timeout' }),
    up({ key: 'g' }),
    dl({ key: 'a', at: 100, done: 200, left: 1, process: 'c1' }),
    dl({ key: 'a', at: 110, done: 190, left: 2, process: 'c2' }),
    dl({ key: 'a', at: 300, done: 30_300, status: 'timeout', process: 'c3' }),
    dl({ key: 'b', at: 100, range: [10, 19] }),
    dl({ key: 'b', at: 120, cut: 40, process: 'c2' }),
    dl({ key: 'b', at: 130, status: 503, code: 'NO_REPLICA_AVAILABLE', process: 'c3' }),
    th({ key: 'b', at: 50, status: 404, code: 'NOT_READY' }),
    th({ key: 'b', at: 1000 }),
    th({ key: 'b', at: 1100, process: 'c2' }),
    del({ key: 'c', at: 200 }),
    dl({ key: 'c', at: 300, status: 410, code: 'FILE_DELETED' }),
    dl({ key: 'd', at: 4500, done: 7000 }),
    dl({ key: 'd', at: 5500 }),
    { ...dl({ key: 'zzz', at: 400, status: 404, code: 'FILE_NOT_FOUND' }), file: 'f-unknown' },
    dl({ key: 'a', at: 700_000, phase: 'final', status: 410, code: 'DOWNLOAD_LIMIT_REACHED' }),
    dl({ key: 'b', at: 700_000, phase: 'final' }),
    dl({ key: 'c', at: 700_000, phase: 'final', status: 410, code: 'FILE_DELETED' }),
    dl({ key: 'd', at: 700_000, phase: 'final', status: 410, code: 'FILE_EXPIRED' }),
    dl({ key: 'g', at: 700_000, phase: 'final', status: 503, code: 'NO_REPLICA_AVAILABLE' }),
  );
  const final = finalState(ops, {
    files: {
      a: { status: 'exhausted', downloadsUsed: 3 },
      c: null,
      d: { status: 'expired', verified: [] },
    },
    redundantAt: HEALED + 12_300,
  });
  const byCheck = results(ops, final);

  it('passes every check', () => {
    for (const r of byCheck.values()) expect(r.violations, r.check).toEqual([]);
  });

  it('says what it checked', () => {
    const checked = Object.fromEntries([...byCheck.values()].map((r) => [r.check, r.checked]));
    expect(checked).toEqual({
      'no-lost-uploads': 5,
      limits: 1,
      'expiry-and-delete': 17,
      'right-bytes': 9,
      redundancy: 3,
    });
    expect(byCheck.get('no-lost-uploads')!.detail).toBe(
      '1 read back, 1 deleted, 1 expired, 1 used up, 1 not readable, copies verified',
    );
    expect(byCheck.get('redundancy')!.detail).toBe('full redundancy 12.3 s after healing');
  });
});

describe('no-lost-uploads', () => {
  const lost = (...ops: Op[]) => violations('no-lost-uploads', history(...ops));

  it('fails a file neither read after healing nor known to the metadata store', () => {
    const ops = history(up({ key: 'a' }));
    expect(violations('no-lost-uploads', ops, finalState(ops, { files: { a: null } }))).toEqual([
      'acknowledged upload lost: never read after healing, unknown to the metadata store',
    ]);
  });

  it('fails a 404 after healing, and one during the run', () => {
    expect(
      lost(
        up({ key: 'a' }),
        dl({ key: 'a', at: 700_000, phase: 'final', status: 404, code: 'FILE_NOT_FOUND' }),
      ),
    ).toEqual(["download after healing answered 404: the file's metadata is lost"]);
    expect(
      lost(
        up({ key: 'a' }),
        dl({ key: 'a', at: 100, status: 404, code: 'FILE_NOT_FOUND' }),
        dl({ key: 'a', at: 700_000, phase: 'final' }),
      ),
    ).toEqual(["download during the run answered 404: the file's metadata is lost"]);
  });

  it('passes a 404 once a delete was sent: the tombstone may be purged', () => {
    expect(
      lost(
        up({ key: 'a' }),
        del({ key: 'a', at: 100, status: 'timeout' }),
        dl({ key: 'a', at: 200, status: 404, code: 'FILE_NOT_FOUND' }),
      ),
    ).toEqual([]);
  });

  it('fails a 410 FILE_DELETED with no delete sent before it ended', () => {
    expect(
      lost(
        up({ key: 'a' }),
        dl({ key: 'a', at: 100, done: 150, status: 410, code: 'FILE_DELETED' }),
        del({ key: 'a', at: 160 }),
      ),
    ).toEqual(['download during the run answered 410 FILE_DELETED, but no delete had been sent']);
    expect(
      lost(
        up({ key: 'a' }),
        dl({ key: 'a', at: 700_000, phase: 'final', status: 410, code: 'FILE_DELETED' }),
      ),
    ).toHaveLength(1);
  });

  it('passes a 410 FILE_DELETED after a delete of unknown outcome', () => {
    expect(
      lost(
        up({ key: 'a' }),
        del({ key: 'a', at: 100, done: 30_100, status: 'timeout' }),
        dl({ key: 'a', at: 120, done: 130, status: 410, code: 'FILE_DELETED' }),
        dl({ key: 'a', at: 700_000, phase: 'final', status: 410, code: 'FILE_DELETED' }),
      ),
    ).toEqual([]);
  });

  it('fails a 410 FILE_EXPIRED before expires_at minus the slack, passes one within it', () => {
    // Uploaded at 0-10 ms with a 5 s TTL: expires at 5010 ms.
    const early = dl({ key: 'a', at: 3000, status: 410, code: 'FILE_EXPIRED' });
    expect(lost(up({ key: 'a', ttl: 5 }), early)).toEqual([
      'download during the run answered 410 FILE_EXPIRED 2.000 s before expires_at (slack 1000 ms)',
    ]);
    const skewed = dl({ key: 'a', at: 4100, phase: 'final', status: 410, code: 'FILE_EXPIRED' });
    expect(lost(up({ key: 'a', ttl: 5 }), skewed)).toEqual([]);
  });

  it('fails a final DOWNLOAD_LIMIT_REACHED before max_downloads were sent', () => {
    const ops = [up({ key: 'a', max: 2 }), dl({ key: 'a', at: 100, left: 1 })];
    const refused = dl({
      key: 'a',
      at: 700_000,
      phase: 'final',
      status: 410,
      code: 'DOWNLOAD_LIMIT_REACHED',
    });
    expect(lost(...ops, refused)).toEqual([
      'answered 410 DOWNLOAD_LIMIT_REACHED after healing, but only 1 of 2 downloads were sent',
    ]);
    const maybe = dl({ key: 'a', at: 200, status: 503, code: 'COUNTER_UNAVAILABLE' });
    expect(lost(...ops, maybe, refused)).toEqual([]);
  });

  it('fails a final read of the wrong bytes', () => {
    expect(
      lost(up({ key: 'a' }), dl({ key: 'a', at: 700_000, phase: 'final', body: content('b') })),
    ).toEqual([expect.stringMatching(/^read after healing: the whole file: sha256 /)]);
  });

  it('passes an unreadable file with a verified copy, fails one without', () => {
    const ops = history(
      up({ key: 'a' }),
      dl({ key: 'a', at: 700_000, phase: 'final', status: 503 }),
    );
    expect(
      violations('no-lost-uploads', ops, finalState(ops, { files: { a: { verified: ['n2'] } } })),
    ).toEqual([]);
    expect(
      violations('no-lost-uploads', ops, finalState(ops, { files: { a: { verified: [] } } })),
    ).toEqual([
      'acknowledged upload lost: not readable after healing (503), no verified copy left',
    ]);
    expect(violations('no-lost-uploads', ops, finalState(ops, { files: { a: null } }))).toEqual([
      'acknowledged upload lost: not readable after healing (503), unknown to the metadata store',
    ]);
  });
});

describe('limits', () => {
  const limits = (...ops: Op[]) => violations('limits', history(...ops));
  const a3 = up({ key: 'a', max: 3 });

  it('fails more grants than max_downloads', () => {
    const ops = [
      up({ key: 'a', max: 1 }),
      dl({ key: 'a', at: 100, left: 0 }),
      dl({ key: 'a', at: 200, left: 0 }),
    ];
    expect(limits(...ops)).toContain('2 downloads granted, the limit is 1');
  });

  it('fails an X-Downloads-Left out of 0…N-1, or missing', () => {
    expect(limits(a3, dl({ key: 'a', at: 100, left: 3 }))).toEqual([
      'X-Downloads-Left 3 is not within 0…2 (max_downloads 3)',
    ]);
    expect(limits(a3, dl({ key: 'a', at: 100, left: null }))).toHaveLength(1);
  });

  it('fails one ordinal granted twice, unless an unknown download could have handed one back', () => {
    const twice = [
      a3,
      dl({ key: 'a', at: 100, done: 200, left: 2 }),
      dl({ key: 'a', at: 110, done: 210, left: 2 }),
    ];
    expect(limits(...twice)).toEqual([
      'download #1 granted 2 times: more repeats than the 0 download(s) of unknown outcome could hand back',
    ]);
    expect(
      limits(
        ...twice,
        dl({ key: 'a', at: 105, done: 150, status: 503, code: 'NO_REPLICA_AVAILABLE' }),
      ),
    ).toEqual([]);
  });

  it('fails a grant whose ordinal is above the downloads sent so far', () => {
    expect(limits(a3, dl({ key: 'a', at: 100, left: 0 }))).toEqual([
      'download #3 granted when only 1 download(s) had been sent',
    ]);
  });

  it('fails grants out of real-time order', () => {
    const first = dl({ key: 'a', at: 100, done: 200, left: 1 });
    const later = dl({ key: 'a', at: 300, done: 400, left: 1 });
    expect(limits(a3, dl({ key: 'a', at: 50, done: 60, status: 'timeout' }), first, later)).toEqual(
      [],
    );
    // A 503 answered after #2 began may have handed one back before the next grant.
    const handedBack = dl({ key: 'a', at: 150, done: 250, status: 503 });
    expect(
      limits(a3, dl({ key: 'a', at: 50, done: 60, left: 2 }), handedBack, first, later),
    ).toEqual([]);
    // Without a download that could hand one back, #2 cannot come twice in a row…
    expect(limits(a3, dl({ key: 'a', at: 50, done: 60, left: 2 }), first, later)).toEqual([
      'download #2 granted 2 times: more repeats than the 0 download(s) of unknown outcome could hand back',
      'download #2 was sent after download #2 had ended',
    ]);
    // …nor can #1 follow #2, even after a 503 (answered, so handed back before #2).
    expect(
      limits(
        a3,
        dl({ key: 'a', at: 50, done: 60, status: 503 }),
        dl({ key: 'a', at: 70, done: 80, status: 503 }),
        first,
        dl({ key: 'a', at: 300, done: 400, left: 2 }),
      ),
    ).toEqual(['download #1 was sent after download #2 had ended']);
  });

  it('fails a DOWNLOAD_LIMIT_REACHED before max_downloads were sent, counting unknown ones', () => {
    const refused = dl({ key: 'a', at: 300, status: 410, code: 'DOWNLOAD_LIMIT_REACHED' });
    const one = up({ key: 'a', max: 2 });
    expect(limits(one, dl({ key: 'a', at: 100, left: 1 }), refused)).toEqual([
      'refused as used up when only 1 of 2 download(s) had been sent',
    ]);
    expect(
      limits(
        one,
        dl({ key: 'a', at: 100, left: 1 }),
        dl({ key: 'a', at: 200, status: 'timeout' }),
        refused,
      ),
    ).toEqual([]);
  });

  it('fails a final downloads_used below the grants or above grants plus unknowns', () => {
    const ops = history(
      a3,
      dl({ key: 'a', at: 100, left: 2 }),
      dl({ key: 'a', at: 200, status: 'timeout' }),
    );
    const used = (n: number) =>
      violations('limits', ops, finalState(ops, { files: { a: { downloadsUsed: n } } }));
    expect(used(1)).toEqual([]);
    expect(used(2)).toEqual([]);
    expect(used(0)).toEqual(['downloads_used 0 after healing; 1 granted, 1 unknown']);
    expect(used(3)).toEqual(['downloads_used 3 after healing; 1 granted, 1 unknown']);
  });

  it('fails an unlimited file that counts or runs out', () => {
    const b = up({ key: 'b' });
    expect(limits(b, dl({ key: 'b', at: 100, left: null }))).toEqual([]);
    expect(limits(b, dl({ key: 'b', at: 100, left: 4 }))).toEqual([
      'unlimited file granted with X-Downloads-Left 4',
    ]);
    expect(
      limits(b, dl({ key: 'b', at: 100, status: 410, code: 'DOWNLOAD_LIMIT_REACHED' })),
    ).toEqual(['unlimited file refused as used up']);
  });
});

describe('expiry-and-delete', () => {
  const late = (...ops: Op[]) => violations('expiry-and-delete', history(...ops));
  // Expires at 5010 ms; bytes are fine for requests sent up to 6010 ms.
  const a = up({ key: 'a', ttl: 5 });

  it('passes a download sent before expiry that ends after it, or sent within the slack', () => {
    expect(late(a, dl({ key: 'a', at: 5000, done: 9000 }), dl({ key: 'a', at: 6000 }))).toEqual([]);
  });

  it('fails bytes for a download or thumbnail sent after expiry plus slack', () => {
    expect(late(a, dl({ key: 'a', at: 6100 }))).toEqual([
      'download sent 1.090 s after expires_at got 200 (slack 1000 ms)',
    ]);
    expect(late(a, th({ key: 'a', at: 6100 }))).toHaveLength(1);
  });

  it('fails bytes for a request sent after the delete was acknowledged', () => {
    const b = up({ key: 'b' });
    expect(late(b, del({ key: 'b', at: 100, done: 200 }), th({ key: 'b', at: 250 }))).toEqual([
      'thumbnail sent 0.050 s after the delete was acknowledged got 200',
    ]);
  });

  it('passes bytes during the delete, or after a delete of unknown outcome', () => {
    const b = up({ key: 'b' });
    expect(
      late(b, del({ key: 'b', at: 100, done: 200 }), dl({ key: 'b', at: 150, done: 300 })),
    ).toEqual([]);
    expect(
      late(b, del({ key: 'b', at: 100, done: 200, status: 'timeout' }), dl({ key: 'b', at: 300 })),
    ).toEqual([]);
  });
});

describe('right-bytes', () => {
  const wrong = (...ops: Op[]) => violations('right-bytes', history(...ops));
  const a = up({ key: 'a' });

  it('fails a whole file of other bytes, or of the wrong length', () => {
    expect(wrong(a, dl({ key: 'a', at: 100, body: content('b') }))).toEqual([
      expect.stringMatching(/^the whole file: sha256 \w{12}…, uploaded \w{12}…$/),
    ]);
    expect(wrong(a, dl({ key: 'a', at: 100, body: content('a').subarray(1) }))).toEqual([
      '99 B received for the whole file, 100 B expected',
    ]);
  });

  it('checks a range against its bytes; a 200 to a range request is the whole file', () => {
    expect(wrong(a, dl({ key: 'a', at: 100, range: [10, 19] }))).toEqual([]);
    expect(wrong(a, dl({ key: 'a', at: 100, range: [10, 19], status: 200 }))).toEqual([]);
    const shifted = content('ab').subarray(11, 21);
    expect(
      wrong(up({ key: 'ab' }), dl({ key: 'ab', at: 100, range: [10, 19], body: shifted })),
    ).toEqual([expect.stringMatching(/^bytes 10-19: sha256 /)]);
  });

  it('checks a cut body as far as it came', () => {
    expect(wrong(a, dl({ key: 'a', at: 100, cut: 30 }), dl({ key: 'a', at: 200, cut: 0 }))).toEqual(
      [],
    );
    expect(wrong(a, dl({ key: 'a', at: 100, body: content('b'), cut: 30 }))).toEqual([
      "the first 30 B of the whole file (cut) are not the upload's",
    ]);
  });

  it('fails a thumbnail unlike its ETag, and two different thumbnails of one file', () => {
    expect(wrong(a, th({ key: 'a', at: 100, etag: `"${sha(Buffer.from('other'))}"` }))).toEqual([
      expect.stringMatching(/^thumbnail body sha256 \w{12}… but ETag "/),
    ]);
    expect(
      wrong(
        a,
        th({ key: 'a', at: 100 }),
        th({ key: 'a', at: 200, body: Buffer.from('another thumbnail') }),
      ),
    ).toEqual([expect.stringMatching(/^2 different thumbnails served: /)]);
  });
});

describe('redundancy', () => {
  const ops = history(up({ key: 'a' }), up({ key: 'b' }), up({ key: 'c' }));
  const check = (final: FinalState) => results(ops, final).get('redundancy')!;

  it('fails a live file missing a verified copy on a node of its placement', () => {
    const r = check(finalState(ops, { files: { a: { verified: ['n1', 'n3'] } } }));
    expect(r.violations.map((v) => v.message)).toEqual([
      'active file has no verified copy on n2 (placed on n1, n2, n3; verified: n1, n3)',
    ]);
  });

  it('passes fewer copies where the layout has fewer nodes, and files no longer live', () => {
    const final = finalState(ops, {
      files: {
        a: { placement: ['n1', 'n2'], verified: ['n1', 'n2'] },
        b: { status: 'deleted', verified: [] },
        c: null,
      },
    });
    final.files.push({ ...final.files[0]!, file: 'f-unknown', verified: [] });
    const r = check(final);
    expect(r.violations).toEqual([]);
    expect(r.checked).toBe(1);
  });

  it('fails once, not per file, when full redundancy never came', () => {
    const r = check(finalState(ops, { redundantAt: null }));
    expect(r.violations.map((v) => v.message)).toEqual([
      'the cluster never reported full redundancy after healing',
    ]);
    expect(r.detail).toBe('full redundancy never reached');
  });
});

describe('a long history', () => {
  it('checks 5,000 ops, a hot limited file among them, in well under a second', () => {
    const ops: Op[] = [up({ key: 'hot', max: 1000 })];
    for (let i = 0; i < 1000; i++) {
      ops.push(dl({ key: 'hot', at: 100 + i * 10, done: 100 + i * 10 + 5, left: 999 - i }));
    }
    for (let i = 0; i < 800; i++) {
      const key = `k${i}`;
      ops.push(up({ key, at: i }), dl({ key, at: 20_000 + i, range: [i % 50, 60] }));
      ops.push(th({ key, at: 30_000 + i }), dl({ key, at: 700_000 + i, phase: 'final' }));
      ops.push(dl({ key, at: 40_000 + i, status: 503 }));
    }
    const h = history(...ops);
    const started = performance.now();
    const all = checkHistory(h, finalState(h), opts);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(all.flatMap((r) => r.violations)).toEqual([]);
    expect(h.length).toBe(5001);
  });
});

describe('excerpt and formatOp', () => {
  it('formats one op per line', () => {
    const d = dl({ key: 'a', at: 12_345, done: 12_465, range: [0, 9], left: 1, process: 'c3' });
    expect(formatOp(d, T0)).toBe(
      `+12.345s c3 download f-a range 0-9 (120 ms) → ok 206 left=1 10 B sha=${d.sha256!.slice(0, 8)}…`,
    );
  });

  it("shows a violation's ops and its file's upload", () => {
    const ops = history(
      up({ key: 'a', max: 1 }),
      up({ key: 'b' }),
      dl({ key: 'a', at: 100, left: 1 }),
    );
    const [v] = results(ops).get('limits')!.violations;
    const lines = excerpt(ops, v!);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^\+0\.000s c1 upload a 100 B max=1 ttl=3600s \(10 ms\) → ok 201 file=f-a expires=\+3600\.010s sha=/,
    );
    expect(lines[1]).toMatch(/^\+0\.100s c1 download f-a /);
    expect(excerpt(ops, { ...v!, ops: [1, 2] }, 2)).toEqual([lines[0], '… 2 more']);
  });
});

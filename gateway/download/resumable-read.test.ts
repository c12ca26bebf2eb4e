import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { resumableRead, type ResumableReadOptions, type Source } from './resumable-read.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const FILE = randomBytes(10_000);
const CHUNK = 1000;

/**
 * A replica body serving FILE[from..to] in CHUNK-byte chunks; with `failAt`,
 * it errors (like a reset connection) once it has sent the bytes before that
 * offset, and with `endAt`, it ends cleanly there.
 */
function replica(
  id: string,
  from: number,
  o: { to?: number; failAt?: number; endAt?: number; data?: Buffer } = {},
): Source & { pulls: () => number } {
  const data = o.data ?? FILE;
  const to = o.to ?? data.length - 1;
  let offset = from;
  let pulls = 0;
  const body = new Readable({
    highWaterMark: CHUNK,
    read() {
      pulls += 1;
      if (o.failAt !== undefined && offset >= o.failAt) {
        this.destroy(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }));
        return;
      }
      const stop = Math.min(to + 1, o.failAt ?? Infinity, o.endAt ?? Infinity);
      if (offset >= stop) {
        this.push(null);
        return;
      }
      const end = Math.min(offset + CHUNK, stop);
      this.push(data.subarray(offset, end));
      offset = end;
    },
  });
  body.on('error', () => {}); // as the gateway's openBlob does
  return { node: { id, url: `http://${id}` }, body, pulls: () => pulls };
}

/** Reads the first chunk off a replica, as the gateway does before committing to it. */
async function opened(src: Source): Promise<Pick<ResumableReadOptions, 'first' | 'head'>> {
  const head = await new Promise<Buffer | null>((resolve) => {
    src.body.once('readable', () => resolve(src.body.read() as Buffer | null));
  });
  return { first: src, head };
}

async function collect(stream: Readable): Promise<{ data: Buffer; error?: Error }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { data: Buffer.concat(chunks) };
  } catch (error) {
    return { data: Buffer.concat(chunks), error: error as Error };
  }
}

const whole = { start: 0, end: FILE.length - 1 };
type Next = ResumableReadOptions['next'];

describe('resumableRead', () => {
  it('streams a whole blob from one replica and checks its sha256', async () => {
    const next = vi.fn<Next>();
    const stream = resumableRead({
      range: whole,
      sha256: sha256(FILE),
      ...(await opened(replica('a', 0))),
      next,
    });
    const { data, error } = await collect(stream);
    expect(error).toBeUndefined();
    expect(data.equals(FILE)).toBe(true);
    expect(next).not.toHaveBeenCalled();
  });

  it('resumes from the next replica at the first byte not received', async () => {
    const next = vi.fn<Next>(async (from) => replica('b', from));
    const { data, error } = await collect(
      resumableRead({
        range: whole,
        sha256: sha256(FILE),
        ...(await opened(replica('a', 0, { failAt: 4500 }))),
        next,
      }),
    );
    expect(error).toBeUndefined();
    expect(data.equals(FILE)).toBe(true);
    expect(next).toHaveBeenCalledTimes(1);
    expect(next.mock.calls[0]![0]).toBe(4500);
    expect(next.mock.calls[0]![1].node.id).toBe('a');
    expect((next.mock.calls[0]![2] as unknown as { code: string }).code).toBe('UND_ERR_SOCKET');
  });

  it('goes through as many replicas as it takes', async () => {
    const sources = [
      (from: number) => replica('b', from, { failAt: 6000 }),
      (from: number) => replica('c', from, { failAt: 6000 }), // fails at once
      (from: number) => replica('d', from),
    ];
    const next = vi.fn<Next>(async (from) => sources.shift()!(from));
    const { data, error } = await collect(
      resumableRead({
        range: whole,
        sha256: sha256(FILE),
        ...(await opened(replica('a', 0, { failAt: 2000 }))),
        next,
      }),
    );
    expect(error).toBeUndefined();
    expect(data.equals(FILE)).toBe(true);
    expect(next.mock.calls.map((call) => [call[0], call[1].node.id])).toEqual([
      [2000, 'a'],
      [6000, 'b'],
      [6000, 'c'],
    ]);
  });

  it('resumes within a range, at absolute offsets, without hashing', async () => {
    const range = { start: 1234, end: 8765 };
    const next = vi.fn<Next>(async (from) => replica('b', from, { to: range.end }));
    const { data, error } = await collect(
      resumableRead({
        range,
        ...(await opened(replica('a', range.start, { to: range.end, failAt: 5000 }))),
        next,
      }),
    );
    expect(error).toBeUndefined();
    expect(data.equals(FILE.subarray(range.start, range.end + 1))).toBe(true);
    expect(next.mock.calls.map((call) => call[0])).toEqual([5000]);
  });

  it('treats a replica that ends short, or sends too much, as failed', async () => {
    const range = { start: 0, end: 4999 };
    const sources = [
      // Asked for [3000..4999], sends the rest of the file.
      (from: number) => replica('b', from),
      (from: number) => replica('c', from, { to: range.end }),
    ];
    const next = vi.fn<Next>(async (from) => sources.shift()!(from));
    const { data, error } = await collect(
      resumableRead({
        range,
        ...(await opened(replica('a', 0, { to: range.end, endAt: 3000 }))),
        next,
      }),
    );
    expect(error).toBeUndefined();
    expect(data.equals(FILE.subarray(0, 5000))).toBe(true);
    expect(next.mock.calls.map((call) => call[1].node.id)).toEqual(['a', 'b']);
    expect(next.mock.calls[0]![0]).toBe(3000);
    expect(next.mock.calls.map((call) => call[2].message)).toEqual([
      'replica ended after 3000 of 5000 bytes',
      'replica sent more than the 5000 bytes asked for',
    ]);
  });

  it('fails, short of the end, when no replica is left', async () => {
    const { data, error } = await collect(
      resumableRead({
        range: whole,
        sha256: sha256(FILE),
        ...(await opened(replica('a', 0, { failAt: 7000 }))),
        next: async () => undefined,
      }),
    );
    expect(error?.message).toBe('other side closed');
    expect(data.length).toBeLessThan(7000);
    expect(data.equals(FILE.subarray(0, data.length))).toBe(true);
  });

  it('holds back the last chunk of a whole blob whose bytes do not match its sha256', async () => {
    // The first replica's copy is corrupt: it cuts its stream, and the bytes it sent are wrong.
    const corrupt = Buffer.from(FILE);
    corrupt[1500]! ^= 0xff;
    const { data, error } = await collect(
      resumableRead({
        range: whole,
        sha256: sha256(FILE),
        ...(await opened(replica('a', 0, { data: corrupt, failAt: 9000 }))),
        next: async (from) => replica('b', from),
      }),
    );
    expect((error as { code?: string } | undefined)?.code).toBe('CHECKSUM_MISMATCH');
    expect(data.length).toBe(FILE.length - CHUNK);
  });

  it('holds back the last chunk of a whole blob until its replica ends, not of a range', async () => {
    for (const verified of [true, false]) {
      const data = FILE.subarray(0, 3000);
      const body = new Readable({ read() {} });
      body.push(data.subarray(0, 1000));
      const src = { node: { id: 'a', url: 'http://a' }, body };
      const stream = resumableRead({
        range: { start: 0, end: 2999 },
        sha256: verified ? sha256(data) : undefined,
        ...(await opened(src)),
        next: async () => undefined,
      });
      let delivered = 0;
      stream.on('data', (chunk: Buffer) => (delivered += chunk.length));
      body.push(data.subarray(1000, 2000));
      await tick();
      body.push(data.subarray(2000));
      for (let i = 0; i < 5; i++) await tick();
      // All 3000 bytes have arrived, but the replica has not ended yet.
      expect(delivered).toBe(verified ? 2000 : 3000);
      body.push(null);
      await new Promise((r) => stream.once('end', r));
      expect(delivered).toBe(3000);
    }
  });

  it('pulls from the replica only as fast as its consumer reads', async () => {
    const big = randomBytes(1000 * CHUNK);
    const src = replica('a', 0, { data: big });
    const stream = resumableRead({
      range: { start: 0, end: big.length - 1 },
      sha256: sha256(big),
      ...(await opened(src)),
      next: async () => undefined,
    });
    stream.once('data', () => stream.pause());
    for (let i = 0; i < 20; i++) await tick();
    // Nobody reads: the stream's buffer fills and the replica is left alone.
    expect(src.pulls()).toBeLessThan(200);
    expect(src.body.destroyed).toBe(false);
    stream.destroy();
    await new Promise((r) => stream.once('close', r));
    expect(src.body.destroyed).toBe(true);
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { PayloadTooLargeError } from './errors.js';
import {
  ByteLimit,
  HashCounter,
  firstChunk,
  lazyBody,
  pipeChain,
  writeHashedFile,
} from './streams.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

function collector(): { sink: Writable; received: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  return { sink, received: () => Buffer.concat(chunks) };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const numbered = (count: number, size: number) =>
  Array.from({ length: count }, (_, i) => Buffer.alloc(size, i & 0xff));

/** A source that counts how often it is asked for data. */
function countingSource(chunks: Buffer[]): { source: Readable; reads: () => number } {
  let reads = 0;
  let next = 0;
  const source = new Readable({
    read() {
      reads += 1;
      this.push(next < chunks.length ? chunks[next++] : null);
    },
  });
  return { source, reads: () => reads };
}

describe('ByteLimit', () => {
  it('passes a body of exactly the limit', async () => {
    const { sink, received } = collector();
    await pipeline(
      Readable.from([Buffer.alloc(4, 1), Buffer.alloc(4, 2), Buffer.alloc(2, 3)]),
      new ByteLimit(10),
      sink,
    );
    expect(received().length).toBe(10);
  });

  it('fails with 413 on the chunk that crosses the limit, without passing it on', async () => {
    const { sink, received } = collector();
    const body = Readable.from([
      Buffer.alloc(4, 1),
      Buffer.alloc(4, 2),
      Buffer.alloc(4, 3),
      Buffer.alloc(4, 4),
    ]);
    const err = await pipeline(body, new ByteLimit(10), sink).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect((err as PayloadTooLargeError).status).toBe(413);
    expect((err as PayloadTooLargeError).message).toContain('10');
    expect(received().equals(Buffer.concat([Buffer.alloc(4, 1), Buffer.alloc(4, 2)]))).toBe(true);
  });

  it('fails a first chunk that is already too large', async () => {
    const { sink, received } = collector();
    await expect(
      pipeline(Readable.from([Buffer.alloc(11)]), new ByteLimit(10), sink),
    ).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(received().length).toBe(0);
  });
});

describe('HashCounter', () => {
  it('hashes and counts what flows through, unchanged', async () => {
    const chunks = numbered(50, 1000);
    const counter = new HashCounter();
    const { sink, received } = collector();
    await pipeline(Readable.from(chunks), counter, sink);
    const all = Buffer.concat(chunks);
    expect(counter.bytes).toBe(50_000);
    expect(counter.digest()).toBe(sha256(all));
    expect(counter.digest()).toBe(sha256(all));
    expect(received().equals(all)).toBe(true);
  });

  it('digests an empty stream', async () => {
    const counter = new HashCounter();
    await pipeline(Readable.from([]), counter, collector().sink);
    expect(counter.bytes).toBe(0);
    expect(counter.digest()).toBe(sha256(Buffer.alloc(0)));
  });
});

describe('lazyBody', () => {
  it('leaves the source untouched until its consumer reads', async () => {
    const chunks = numbered(20, 5000);
    const { source, reads } = countingSource(chunks);

    const first = lazyBody(source);
    await tick();
    await tick();
    expect(first.started()).toBe(false);
    expect(reads()).toBe(0);
    // The attempt fails before reading, as when a node refuses the connection.
    first.body.on('error', () => {});
    first.body.destroy(new Error('connect ECONNREFUSED'));
    await tick();
    expect(source.destroyed).toBe(false);
    expect(reads()).toBe(0);

    const second = lazyBody(source);
    const data = await readAll(second.body);
    expect(second.started()).toBe(true);
    expect(first.started()).toBe(false);
    expect(data.equals(Buffer.concat(chunks))).toBe(true);
  });

  it('delivers every byte in order to a slow consumer', async () => {
    const chunks = numbered(64, 16 * 1024);
    const { body, started } = lazyBody(Readable.from(chunks));
    const received: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _enc, done) {
        received.push(chunk);
        setImmediate(done);
      },
    });
    await pipeline(body, slow);
    expect(started()).toBe(true);
    expect(sha256(Buffer.concat(received))).toBe(sha256(Buffer.concat(chunks)));
  });

  it('fails the body when the source fails after it started', async () => {
    const source = Readable.from(
      (async function* () {
        yield Buffer.from('partial');
        throw new Error('upstream reset');
      })(),
    );
    const { body } = lazyBody(source);
    await expect(readAll(body)).rejects.toThrow('upstream reset');
  });
});

describe('firstChunk', () => {
  it('resolves with the first chunk and leaves the rest readable', async () => {
    const chunks = [Buffer.from('alpha'), Buffer.from('beta'), Buffer.from('gamma')];
    const stream = Readable.from(chunks);
    const first = await firstChunk(stream);
    expect(first?.toString()).toBe('alpha');
    expect((await readAll(stream)).toString()).toBe('betagamma');
  });

  it('resolves null for an empty stream', async () => {
    expect(await firstChunk(Readable.from([]))).toBeNull();
  });

  it('rejects when the stream fails before its first chunk', async () => {
    const stream = new Readable({
      read() {
        this.destroy(new Error('disk on fire'));
      },
    });
    await expect(firstChunk(stream)).rejects.toThrow('disk on fire');
  });

  it('rejects when the stream closes without a byte or an error', async () => {
    const stream = new Readable({ read() {} });
    const pending = firstChunk(stream);
    stream.destroy();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });
});

describe('pipeChain', () => {
  it('pipes every stage in order and resolves when the sink has finished', async () => {
    const chunks = numbered(50, 1000);
    const { sink, received } = collector();
    const counter = new HashCounter();
    await pipeChain(Readable.from(chunks), counter, sink);
    expect(received().equals(Buffer.concat(chunks))).toBe(true);
    expect(counter.bytes).toBe(50_000);
  });

  it('resolves on end when the last stage is a Readable', async () => {
    const counter = new HashCounter();
    const done = pipeChain(Readable.from([Buffer.from('abc')]), counter);
    counter.resume();
    await done;
    expect(counter.digest()).toBe(sha256(Buffer.from('abc')));
  });

  it('destroys every stage and rejects with the first error', async () => {
    const source = Readable.from(numbered(5, 10));
    const limit = new ByteLimit(25);
    const { sink } = collector();
    const err = await pipeChain(source, limit, sink).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(source.destroyed && limit.destroyed && sink.destroyed).toBe(true);
  });

  it('rejects when a stage closes before finishing its work', async () => {
    const source = new Readable({ read() {} });
    const { sink } = collector();
    const done = pipeChain(source, sink);
    source.push(Buffer.from('partial'));
    await tick();
    sink.destroy();
    await expect(done).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    expect(source.destroyed).toBe(true);
  });
});

describe('writeHashedFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trove-streams-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes every byte of many chunks (batched past 1 MiB) and answers their sha256', async () => {
    const chunks = Array.from({ length: 40 }, (_, i) => randomBytes(40_000 + i));
    const whole = Buffer.concat(chunks);
    const path = join(dir, 'many');
    const out = await writeHashedFile(Readable.from(chunks), path);
    expect(out).toEqual({
      sha256: createHash('sha256').update(whole).digest('hex'),
      bytes: whole.length,
    });
    expect(readFileSync(path).equals(whole)).toBe(true);
  });

  it('refuses to overwrite an existing file', async () => {
    const path = join(dir, 'taken');
    writeFileSync(path, 'x');
    await expect(writeHashedFile(Readable.from([Buffer.from('y')]), path)).rejects.toMatchObject({
      code: 'EEXIST',
    });
    expect(readFileSync(path, 'utf8')).toBe('x');
  });

  it('fails with the source and stops on an aborted signal', async () => {
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(10));
        this.destroy(new Error('connection reset'));
      },
    });
    await expect(writeHashedFile(failing, join(dir, 'failed'))).rejects.toThrow('connection reset');
    const abort = new AbortController();
    abort.abort(new Error('deadline'));
    await expect(
      writeHashedFile(Readable.from([Buffer.alloc(5)]), join(dir, 'aborted'), abort.signal),
    ).rejects.toThrow('deadline');
  });
});

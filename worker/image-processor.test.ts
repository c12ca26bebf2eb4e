import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeChain } from '../shared/placement.js';
import { placementOf, seedLayout } from '../shared/layout.js';
import { fixedLayout } from '../shared/layout-watcher.js';
import type { NodeAddress } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import type { NodeClient, PutOptions } from '../shared/node-client.js';
import { SqliteMetadataStore, openDatabase } from '../shared/sqlite-metadata-store.js';
import { ImageProcessor, MAX_INTERRUPTIONS } from './image-processor.js';
import { Slots } from './slots.js';
import { VariantWriter } from './variant-writer.js';

const nodes: NodeAddress[] = ['node1', 'node2', 'node3'].map((id, i) => ({
  id,
  url: `http://127.0.0.1:${9001 + i}`,
}));
const layout = fixedLayout(seedLayout(nodes));
const log = createLogger('test', 'silent');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const refused = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

/** Storage nodes in memory, speaking the NodeClient calls the worker makes. */
class FakeNodes {
  readonly blobs = new Map<string, Map<string, Buffer>>(nodes.map((n) => [n.id, new Map()]));
  readonly down = new Set<string>();
  reads = 0;
  /** When set, reads never send a byte (until the caller aborts). */
  stall = false;

  get client(): NodeClient {
    return this as unknown as NodeClient;
  }

  async putBlob(target: NodeAddress, key: string, body: Readable | Buffer, o: PutOptions) {
    if (this.down.has(target.id)) throw refused();
    const data = Buffer.isBuffer(body) ? body : Buffer.concat(await body.toArray());
    const replicas = [target, ...o.chain].map((n) => {
      if (this.down.has(n.id)) return { node: n.id, ok: false as const, error: 'down' };
      this.blobs.get(n.id)!.set(key, data);
      return { node: n.id, ok: true as const, sha256: sha256(data), size: data.length };
    });
    return { key, replicas };
  }

  async getBlob(target: NodeAddress, key: string, o: { signal?: AbortSignal } = {}) {
    if (this.down.has(target.id)) throw refused();
    this.reads++;
    const data = this.blobs.get(target.id)!.get(key);
    const body: Readable & { dump?: () => Promise<void> } = this.stall
      ? new Readable({ read() {} })
      : Readable.from(data ? [data] : []);
    body.dump = async () => void body.destroy();
    o.signal?.addEventListener('abort', () => body.destroy(o.signal!.reason as Error));
    return { statusCode: data || this.stall ? 200 : 404, headers: {}, body };
  }

  async deleteBlob(target: NodeAddress, key: string) {
    return this.blobs.get(target.id)!.delete(key);
  }

  holders(key: string): string[] {
    return nodes.filter((n) => this.blobs.get(n.id)!.has(key)).map((n) => n.id);
  }
}

let dir: string;
let store: SqliteMetadataStore;
let fake: FakeNodes;
let repairs: string[];
/** Files whose `images.compress` job the processors published. */
let queued: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trove-images-'));
  store = new SqliteMetadataStore(openDatabase(join(dir, 'trove.db')));
  fake = new FakeNodes();
  repairs = [];
  queued = [];
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function processor(timeoutMs = 30_000): ImageProcessor {
  return new ImageProcessor({
    store,
    client: fake.client,
    layout,
    writer: new VariantWriter({ client: fake.client, layout, copies: 3, quorum: 2, log }),
    slots: new Slots(2),
    log,
    maxInputPixels: 50_000_000,
    timeoutMs,
    tmpDir: dir,
    repair: async (_fileId, key) => void repairs.push(key),
    queueCompressed: async (fileId) => void queued.push(fileId),
  });
}

/** Both stages, as the two queues would run them: the thumbnail job, then the copy jobs it published. */
async function processFully(images: ImageProcessor, fileId: string): Promise<void> {
  await images.handle({ fileId });
  for (const id of queued.splice(0)) await images.handleCompressed({ fileId: id });
}

let seq = 0;
/** A committed upload of `data`, its original on every fake node. */
async function uploaded(data: Buffer, contentType = 'image/png'): Promise<string> {
  const id = `img${String(seq++).padStart(19, '0')}`;
  await store.beginUpload({
    id,
    name: 'a.png',
    contentType,
    maxDownloads: 0,
    createdAt: Date.now(),
    expiresAt: Date.now() + 3_600_000,
    deleteTokenHash: 'h',
    owner: 'gw',
  });
  await store.commitUploads([
    {
      id,
      size: data.length,
      sha256: sha256(data),
      maxDownloads: 0,
      expiresAt: Date.now() + 3_600_000,
      replicas: nodes.map((n) => ({ key: id, node: n.id, state: 'ok' as const })),
    },
  ]);
  for (const n of nodes) fake.blobs.get(n.id)!.set(id, data);
  return id;
}

const png = () =>
  sharp({ create: { width: 600, height: 300, channels: 3, background: '#c0ffee' } })
    .png()
    .toBuffer();

describe('ImageProcessor', () => {
  it('stores both variants on three nodes and records them with their replicas', async () => {
    const id = await uploaded(await png());
    await processFully(processor(), id);
    const file = await store.getFile(id);
    expect(file).toMatchObject({ processing: 'done', processingAttempts: 0 });
    const variants = await store.variantsOf(id);
    expect(variants.map((v) => [v.variant, v.width, v.height, v.contentType])).toEqual([
      ['compressed', 600, 300, 'image/webp'],
      ['thumb', 256, 128, 'image/webp'],
    ]);
    for (const v of variants) {
      const key = `${id}.${v.variant}`;
      expect(fake.holders(key)).toEqual(['node1', 'node2', 'node3']);
      expect(sha256(fake.blobs.get('node1')!.get(key)!)).toBe(v.sha256);
    }
    const rows = (await store.replicasOf(id)).filter((r) => r.key !== id);
    expect(rows).toHaveLength(6);
    expect(rows.every((r) => r.state === 'ok')).toBe(true);
    expect(readdirSync(dir).filter((f) => f.startsWith(id))).toEqual([]); // temp files gone
  });

  it('runs twice at once and still records one set of variants', async () => {
    const id = await uploaded(await png());
    const images = processor();
    await Promise.all([processFully(images, id), processFully(images, id)]);
    expect(await store.variantsOf(id)).toHaveLength(2);
    expect((await store.replicasOf(id)).filter((r) => r.key !== id)).toHaveLength(6);
    const reads = fake.reads;
    await processFully(images, id); // done: nothing read again
    expect(fake.reads).toBe(reads);
  });

  it('records the thumbnail first, leaves the file pending, and queues the copy', async () => {
    const id = await uploaded(await png());
    const images = processor();
    await images.handle({ fileId: id });
    expect(await store.getFile(id)).toMatchObject({ processing: 'pending', processingAttempts: 0 });
    expect((await store.variantsOf(id)).map((v) => v.variant)).toEqual(['thumb']);
    expect(fake.holders(`${id}.thumb`)).toEqual(['node1', 'node2', 'node3']);
    expect(queued).toEqual([id]);
    // A second thumbnail job (the sweep, a redelivery) makes nothing again and only passes on.
    const reads = fake.reads;
    await images.handle({ fileId: id });
    expect(fake.reads).toBe(reads);
    expect(queued).toEqual([id, id]);
    await images.handleCompressed({ fileId: id });
    expect((await store.getFile(id))?.processing).toBe('done');
    expect((await store.variantsOf(id)).map((v) => v.variant)).toEqual(['compressed', 'thumb']);
  });

  it('makes a copy wait while a thumbnail is in progress on the worker', async () => {
    const [first, second] = [await uploaded(await png()), await uploaded(await png())];
    const images = processor(500);
    await images.handle({ fileId: first });
    const order: string[] = [];
    fake.stall = true; // the second thumbnail's fetch hangs until its time limit (0.5 s, under COPY_YIELD_MS)
    const thumb = images.handle({ fileId: second }).then(() => order.push('thumbnail'));
    await new Promise((r) => setTimeout(r, 50));
    fake.stall = false;
    const copy = images.handleCompressed({ fileId: first }).then(() => order.push('copy'));
    await Promise.all([thumb, copy]);
    expect(order).toEqual(['thumbnail', 'copy']);
    expect((await store.getFile(first))?.processing).toBe('done');
  });

  it('fails an image sharp cannot read with its reason, without throwing', async () => {
    const id = await uploaded((await png()).subarray(0, 60)); // the header, then nothing
    await processFully(processor(), id);
    expect(await store.getFile(id)).toMatchObject({
      processing: 'failed',
      processingError: expect.stringMatching(/^corrupt or truncated image: /),
    });
    expect(await store.variantsOf(id)).toEqual([]);
  });

  it(`gives up, without opening it, an image the worker died on ${MAX_INTERRUPTIONS} times`, async () => {
    const id = await uploaded(await png());
    for (let i = 0; i < MAX_INTERRUPTIONS; i++) await store.beginProcessing(id); // each killed the worker
    await processFully(processor(), id);
    expect(await store.getFile(id)).toMatchObject({
      processing: 'failed',
      processingError: `given up: processing was interrupted ${MAX_INTERRUPTIONS} times`,
    });
    expect(fake.reads).toBe(0);
  });

  it('fails a job past its time limit', async () => {
    const id = await uploaded(await png());
    fake.stall = true;
    await processFully(processor(200), id);
    expect(await store.getFile(id)).toMatchObject({
      processing: 'failed',
      processingError: 'processing took longer than IMAGE_JOB_TIMEOUT_SECONDS',
    });
  });

  it('throws when no node can serve the original, leaving the image pending and uncounted', async () => {
    const id = await uploaded(await png());
    for (const n of nodes) fake.down.add(n.id);
    await expect(processFully(processor(), id)).rejects.toThrow(/no storage node/);
    expect(await store.getFile(id)).toMatchObject({ processing: 'pending', processingAttempts: 0 });
  });

  it('drops the job of a file that is gone', async () => {
    const id = await uploaded(await png());
    await store.markDeleted(id, 'deleted', Date.now());
    await processor().handle({ fileId: id });
    await processor().handle({ fileId: 'unknown000000000000000' });
    expect(fake.reads).toBe(0);
    expect((await store.getFile(id))?.processing).toBe('pending');
  });

  it('reads the original from the next replica when one lacks it, and has it repaired', async () => {
    const id = await uploaded(await png());
    const first = writeChain(id, nodes, 3)[0]!;
    fake.blobs.get(first.id)!.delete(id);
    await processFully(processor(), id);
    expect((await store.getFile(id))?.processing).toBe('done');
    const row = (await store.replicasOf(id)).find((r) => r.key === id && r.node === first.id);
    expect(row?.state).toBe('missing');
    expect(repairs).toContain(id);
  });
});

describe('VariantWriter', () => {
  const writer = () =>
    new VariantWriter({ client: fake.client, layout, copies: 3, quorum: 2, log });
  const data = Buffer.from('variant bytes');

  it('writes down the placement chain of the key', async () => {
    const stored = await writer().write('k.thumb', data);
    expect(stored).toEqual({
      sha256: sha256(data),
      size: data.length,
      replicas: placementOf('k.thumb', layout.nodes(), 3).map((n) => ({ node: n.id, state: 'ok' })),
    });
  });

  it('sends to the rest of the chain when the head is down, and records the head missing', async () => {
    const [head, ...rest] = placementOf('k.thumb', layout.nodes(), 3);
    fake.down.add(head!.id);
    const stored = await writer().write('k.thumb', data);
    expect(stored.replicas).toEqual([
      { node: head!.id, state: 'missing' },
      ...rest.map((n) => ({ node: n.id, state: 'ok' })),
    ]);
    expect(fake.holders('k.thumb').sort()).toEqual(rest.map((n) => n.id).sort());
  });

  it('fails below the write quorum', async () => {
    const [, second, third] = placementOf('k.thumb', layout.nodes(), 3);
    fake.down.add(second!.id).add(third!.id);
    await expect(writer().write('k.thumb', data)).rejects.toThrow(/only 1 of 3/);
  });
});

import { describe, expect, it } from 'vitest';
import type { FileRecord, MetadataStore, VariantRecord } from '../../shared/metadata-store.js';
import { processingJson } from './file-view.js';
import { parseVariant, variantBlob, variantFileName } from './variants.js';

const file = (over: Partial<FileRecord> = {}): FileRecord => ({
  id: 'JrJ3b1Z0RkqY0cY3Gq5mNw',
  name: 'photo.jpg',
  size: 1000,
  contentType: 'image/jpeg',
  sha256: 'f'.repeat(64),
  state: 'committed',
  maxDownloads: 3,
  downloadsUsed: 0,
  createdAt: 0,
  expiresAt: 1e13,
  deleteTokenHash: 'h',
  owner: 'gw',
  deletedAt: null,
  deleteReason: null,
  processing: 'pending',
  processingError: null,
  processingAttempts: 0,
  ...over,
});

const thumb: VariantRecord = {
  fileId: 'JrJ3b1Z0RkqY0cY3Gq5mNw',
  variant: 'thumb',
  size: 5120,
  width: 256,
  height: 171,
  contentType: 'image/webp',
  sha256: 'a'.repeat(64),
  createdAt: 0,
};

const storeWith = (variants: VariantRecord[]) =>
  ({ variantsOf: async () => variants }) as unknown as MetadataStore;

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'served',
    (err: { code: string; status: number }) => `${err.status} ${err.code}`,
  );

describe('parseVariant', () => {
  it('is the original without a parameter, the compressed copy by name, 400 otherwise', () => {
    expect(parseVariant(undefined)).toBeUndefined();
    expect(parseVariant('original')).toBeUndefined();
    expect(parseVariant('compressed')).toBe('compressed');
    expect(() => parseVariant('huge')).toThrow(
      expect.objectContaining({ code: 'UNKNOWN_VARIANT', status: 400 }),
    );
    // The thumbnail never counts, so it is not a download variant: the error says where it is.
    expect(() => parseVariant('thumbnail')).toThrow(/GET \/files\/:id\/thumbnail/);
  });
});

describe('variantBlob', () => {
  it('serves a variant that exists, under its own key, size, sha256 and type', async () => {
    const blob = await variantBlob(storeWith([thumb]), file({ processing: 'done' }), 'thumb');
    expect(blob).toEqual({
      key: 'JrJ3b1Z0RkqY0cY3Gq5mNw.thumb',
      size: 5120,
      sha256: 'a'.repeat(64),
      contentType: 'image/webp',
      name: 'photo-thumb.webp',
    });
  });

  it('is 404 NOT_READY while pending, 404 NO_VARIANT when it never will be', async () => {
    const none = storeWith([]);
    expect(await codeOf(variantBlob(none, file(), 'thumb'))).toBe('404 NOT_READY');
    const failed = file({ processing: 'failed', processingError: 'unsupported image format' });
    await expect(variantBlob(none, failed, 'compressed')).rejects.toThrow(
      /unsupported image format/,
    );
    expect(await codeOf(variantBlob(none, failed, 'thumb'))).toBe('404 NO_VARIANT');
    expect(await codeOf(variantBlob(none, file({ processing: 'skipped' }), 'thumb'))).toBe(
      '404 NO_VARIANT',
    );
  });
});

describe('variantFileName', () => {
  it('names variants after the original, as WebP', () => {
    expect(variantFileName('photo.jpg', 'compressed')).toBe('photo.webp');
    expect(variantFileName('photo.jpg', 'thumb')).toBe('photo-thumb.webp');
    expect(variantFileName('.jpg', 'thumb')).toBe('image-thumb.webp');
  });
});

describe('processingJson', () => {
  const base = 'http://gw';
  /** `thumb` as processingJson lists it. */
  const thumbJson = {
    url: 'http://gw/files/JrJ3b1Z0RkqY0cY3Gq5mNw/thumbnail',
    size: 5120,
    width: 256,
    height: 171,
    content_type: 'image/webp',
    sha256: 'a'.repeat(64),
  };

  it('shows the state alone while pending or skipped, and the reason of a failure', () => {
    expect(processingJson(file(), [], base)).toEqual({ state: 'pending' });
    expect(processingJson(file({ processing: 'skipped' }), [], base)).toEqual({ state: 'skipped' });
    expect(
      processingJson(file({ processing: 'failed', processingError: 'too large' }), [], base),
    ).toEqual({ state: 'failed', reason: 'too large' });
  });

  it('lists the thumbnail of an image still pending its compressed copy, and of one whose copy failed', () => {
    const listed = { thumbnail: thumbJson };
    expect(processingJson(file(), [thumb], base)).toEqual({ state: 'pending', variants: listed });
    expect(
      processingJson(file({ processing: 'failed', processingError: 'x' }), [thumb], base),
    ).toEqual({ state: 'failed', reason: 'x', variants: listed });
  });

  it('lists each variant with its size, dimensions, type and URL once done', () => {
    const compressed = { ...thumb, variant: 'compressed' as const, width: 2048, height: 1365 };
    expect(processingJson(file({ processing: 'done' }), [compressed, thumb], base)).toEqual({
      state: 'done',
      variants: {
        compressed: {
          url: 'http://gw/download/JrJ3b1Z0RkqY0cY3Gq5mNw?variant=compressed',
          size: 5120,
          width: 2048,
          height: 1365,
          content_type: 'image/webp',
          sha256: 'a'.repeat(64),
        },
        thumbnail: thumbJson,
      },
    });
  });
});

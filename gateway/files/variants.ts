/**
 * The gateway's side of image variants: asking the workers to make them, and
 * finding the blob a request wants (a file's original, or a variant once it
 * exists). Serving goes through download.ts, like any other read.
 */
import { z } from 'zod';
import type { JobPublisher } from '../../shared/amqp.js';
import { BadRequestError, NotFoundError } from '../../shared/errors.js';
import { blobKey } from '../../shared/keys.js';
import type { Logger } from '../../shared/logger.js';
import type { FileRecord, MetadataStore, VariantName } from '../../shared/metadata-store.js';

/** One blob the gateway serves: a file's original, or one of its variants. */
export interface ServedBlob {
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  /** The file name offered to the client. */
  name: string;
}

export function originalBlob(file: FileRecord): ServedBlob {
  return {
    key: file.id,
    size: file.size,
    sha256: file.sha256,
    contentType: file.contentType,
    name: file.name,
  };
}

/**
 * `?variant=` of GET /download/:id: the original, or a variant that may be
 * downloaded (the thumbnail has its own route and counts nothing).
 */
export const DOWNLOAD_VARIANT = z.enum(['original', 'compressed']).meta({
  description: 'original (the default) or compressed: either counts as a download.',
  example: 'compressed',
});

/**
 * `?variant=` of GET /download/:id: undefined for the original (no parameter,
 * or `original`), else the variant; 400 for any other name, before the file is looked up.
 */
export function parseVariant(param: string | undefined): VariantName | undefined {
  if (param === undefined) return undefined;
  const parsed = DOWNLOAD_VARIANT.safeParse(param);
  if (parsed.success) return parsed.data === 'original' ? undefined : parsed.data;
  const hint =
    param === 'thumb' || param === 'thumbnail' ? ' (the thumbnail: GET /files/:id/thumbnail)' : '';
  throw new BadRequestError(
    `unknown variant "${param.slice(0, 40)}": use original or compressed${hint}`,
    'UNKNOWN_VARIANT',
  );
}

/** A variant of `file`: 404 NOT_READY while it is being made, 404 NO_VARIANT when it never will be. */
export async function variantBlob(
  store: MetadataStore,
  file: FileRecord,
  variant: VariantName,
): Promise<ServedBlob> {
  const found = (await store.variantsOf(file.id)).find((v) => v.variant === variant);
  if (found) {
    return {
      key: blobKey(file.id, variant),
      size: found.size,
      sha256: found.sha256,
      contentType: found.contentType,
      name: variantFileName(file.name, variant),
    };
  }
  switch (file.processing) {
    case 'failed':
      throw new NotFoundError(
        `this image could not be processed: ${file.processingError ?? 'unknown reason'}`,
        'NO_VARIANT',
      );
    case 'skipped':
      throw new NotFoundError('this file is not an image: it has no variants', 'NO_VARIANT');
    default:
      throw new NotFoundError(
        `the ${variant} variant is not ready yet; try again shortly`,
        'NOT_READY',
      );
  }
}

/** `photo.jpg` → `photo.webp` (compressed), `photo-thumb.webp` (thumbnail). */
export function variantFileName(name: string, variant: VariantName): string {
  const stem = name.replace(/\.[^.]*$/, '') || 'image';
  return variant === 'compressed' ? `${stem}.webp` : `${stem}-${variant}.webp`;
}

export interface ProcessingRequestDeps {
  amqp: JobPublisher;
  log: Logger;
}

/** How long the upload answer may wait for RabbitMQ's confirm of the job. */
const PUBLISH_TIMEOUT_MS = 2000;

/**
 * Queues `images.process` for a committed image. Best effort: with RabbitMQ
 * down, the worker's processing sweep finds the pending image later.
 */
export async function requestProcessing(deps: ProcessingRequestDeps, fileId: string) {
  if (!deps.amqp.connected) return;
  try {
    await deps.amqp.publish(
      deps.amqp.names.imageProcess,
      { fileId },
      { timeoutMs: PUBLISH_TIMEOUT_MS },
    );
  } catch (err) {
    deps.log.warn(
      { id: fileId, err: (err as Error).message },
      'could not queue image processing; the sweep will',
    );
  }
}

/**
 * The public JSON shape of a file (DESIGN "upload answer"), built in one
 * place. Its status and downloads left follow the rules of file-rules.ts.
 */
import type {
  FileRecord,
  ReplicaRecord,
  VariantName,
  VariantRecord,
} from '../../shared/metadata-store.js';
import { downloadsLeft, fileStatus } from './file-rules.js';

/** What the public view needs of a file. */
export type FileView = Pick<
  FileRecord,
  | 'id'
  | 'name'
  | 'size'
  | 'contentType'
  | 'sha256'
  | 'maxDownloads'
  | 'downloadsUsed'
  | 'createdAt'
  | 'expiresAt'
  | 'deletedAt'
  | 'processing'
  | 'processingError'
>;

/** Where each variant is served (the thumbnail never counts; the compressed copy does). */
export function variantUrl(base: string, id: string, variant: VariantName): string {
  return variant === 'thumb'
    ? `${base}/files/${id}/thumbnail`
    : `${base}/download/${id}?variant=${variant}`;
}

/** The public name of a variant in JSON. */
const VARIANT_LABELS: Record<VariantName, string> = {
  thumb: 'thumbnail',
  compressed: 'compressed',
};

/**
 * `processing` of the file object: the state, the reason of a failure, the
 * variants once made. A `pending` image lists the thumbnail as soon as it is
 * made, before the compressed copy.
 */
export function processingJson(f: FileView, variants: VariantRecord[], base: string) {
  switch (f.processing) {
    case 'failed':
      // A copy that failed after its thumbnail was made keeps the thumbnail.
      return variants.length === 0
        ? { state: f.processing, reason: f.processingError ?? 'unknown' }
        : {
            state: f.processing,
            reason: f.processingError ?? 'unknown',
            variants: variantsJson(f, variants, base),
          };
    case 'done':
      return { state: f.processing, variants: variantsJson(f, variants, base) };
    case 'pending':
      return variants.length === 0
        ? { state: f.processing }
        : { state: f.processing, variants: variantsJson(f, variants, base) };
    default:
      return { state: f.processing };
  }
}

function variantsJson(f: FileView, variants: VariantRecord[], base: string) {
  return Object.fromEntries(
    variants.map((v) => [
      VARIANT_LABELS[v.variant],
      {
        url: variantUrl(base, f.id, v.variant),
        size: v.size,
        width: v.width,
        height: v.height,
        content_type: v.contentType,
        sha256: v.sha256,
      },
    ]),
  );
}

/** The fields every JSON view of a file starts with (the public one here, the admin API's listing). */
export function fileFields(f: FileView, status: string, base: string) {
  return {
    id: f.id,
    name: f.name,
    size: f.size,
    content_type: f.contentType,
    sha256: f.sha256,
    status,
    max_downloads: f.maxDownloads,
    downloads_used: f.downloadsUsed,
    downloads_left: downloadsLeft(f),
    created_at: new Date(f.createdAt).toISOString(),
    expires_at: new Date(f.expiresAt).toISOString(),
    deleted_at: f.deletedAt === null ? null : new Date(f.deletedAt).toISOString(),
    url: fileLinks(base, f.id).url,
  };
}

/** A file's download URL and its share page (which never counts), known from its id alone. */
export function fileLinks(base: string, id: string): { url: string; share_url: string } {
  return { url: `${base}/download/${id}`, share_url: `${base}/s/${id}` };
}

export function fileJson(
  f: FileView,
  replicas: Pick<ReplicaRecord, 'key' | 'node' | 'state'>[],
  base: string,
  variants: VariantRecord[] = [],
) {
  return {
    ...fileFields(f, fileStatus(f), base),
    // The page to hand people (never counts); `url` is the download itself.
    share_url: fileLinks(base, f.id).share_url,
    replicas: replicas.filter((r) => r.key === f.id).map((r) => ({ node: r.node, state: r.state })),
    processing: processingJson(f, variants, base),
  };
}

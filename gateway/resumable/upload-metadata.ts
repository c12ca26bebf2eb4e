/**
 * A resumable upload's options come in its `Upload-Metadata` (tus: comma-
 * separated `key base64value` pairs, which @tus/server decodes): the file
 * name as `filename` (tus-js-client, Uppy) or `name`, and `max_downloads`
 * and `ttl` as in POST /upload. `filetype` is ignored: the type is decided
 * from the bytes, as for every upload.
 */
import { cleanFileName } from '../http/http-names.js';
import {
  OPTION_NAMES,
  parseOption,
  resolveOptions,
  type OptionName,
  type UploadLimits,
  type UploadOptions,
} from '../upload/upload-options.js';

export interface UploadSettings extends UploadOptions {
  name: string;
}

/** Validated settings (400 INVALID_OPTION naming a bad one); options a signed upload link fixes win. */
export function uploadSettings(
  metadata: Record<string, string | null>,
  limits: UploadLimits,
  fixed: Partial<Record<OptionName, number>> = {},
): UploadSettings {
  const given: Partial<Record<OptionName, number>> = {};
  for (const name of OPTION_NAMES) {
    const raw = metadata[name];
    if (raw !== undefined && raw !== null) given[name] = parseOption(name, raw, limits);
  }
  const name = metadata.filename ?? metadata.name ?? 'file';
  return { name: cleanFileName(name || 'file'), ...resolveOptions({ ...given, ...fixed }, limits) };
}

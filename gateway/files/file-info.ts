/** GET /files/:id: a file's metadata, in its public JSON view (file-view.ts); never counts. */
import type { Context } from 'hono';
import type { GatewayConfig } from '../../shared/config.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import { baseUrl } from '../http/public-url.js';
import { findFile } from './file-rules.js';
import { fileJson } from './file-view.js';

export interface FileInfoDeps {
  store: MetadataStore;
  urls: GatewayConfig['urls'];
}

export async function handleFileInfo(deps: FileInfoDeps, c: Context) {
  const file = await findFile(deps.store, c.req.param('id'));
  const [replicas, variants] = await Promise.all([
    deps.store.replicasOf(file.id),
    deps.store.variantsOf(file.id),
  ]);
  const base = baseUrl((n) => c.req.header(n), c.req.url, deps.urls);
  return c.json(fileJson(file, replicas, base, variants));
}

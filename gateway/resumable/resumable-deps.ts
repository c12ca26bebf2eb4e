/** What the resumable-upload room needs of the gateway (GatewayDeps has it all). */
import type { GatewayConfig } from '../../shared/config.js';
import type { LayoutView } from '../../shared/layout-watcher.js';
import type { GatewayNodeClient } from '../../shared/node-client.js';
import type { UploadDeps } from '../upload/upload.js';

export type ResumableDeps = UploadDeps & {
  client: GatewayNodeClient;
  /** The layout in force: where parts are copied from and removed. */
  layout: LayoutView;
  /** uploadLinkKey(cluster secret): resumable uploads' delete tokens are derived with it. */
  uploadLinkKey: Buffer;
  /** RESUMABLE_*. */
  resumable: GatewayConfig['resumable'];
};

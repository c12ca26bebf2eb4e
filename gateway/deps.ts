/**
 * The parts of GatewayDeps derived from the configuration and the running
 * services: gateway/run.ts and the tests that build the app both go through
 * here. The configuration itself goes to createApp as loaded.
 */
import type { GatewayConfig } from '../shared/config.js';
import type { GatewayDeps, GatewayParts } from './http/app.js';
import { RepairQueue } from '../shared/repair-queue.js';
import { createProcessing } from './processing/process.js';
import { REPAIR_PUBLISH_TIMEOUT_MS } from './cluster/repair-requests.js';
import { uploadLinkKey } from './upload/upload-link-token.js';
import { MemoryBudget } from '../shared/memory-budget.js';
import { BlobCache } from './download/blob-cache.js';
import { ResumeGrants, resumeGrantKey } from './download/resume-grants.js';
import { AccessKeys } from './s3/access-keys.js';

export function gatewayDeps(
  config: GatewayConfig,
  parts: GatewayParts & {
    /** The cluster secret: upload links, resume grants and S3 secrets at rest use keys derived from it. */
    secret: string;
  },
): GatewayDeps {
  const { secret, ...services } = parts;
  return {
    ...config,
    ...services,
    repairs: new RepairQueue({
      redis: services.redis,
      prefix: config.clusterName,
      publish: (job) =>
        services.amqp.publish(services.amqp.names.replicaRepair, job, {
          timeoutMs: REPAIR_PUBLISH_TIMEOUT_MS,
        }),
    }),
    ...createProcessing(config.processing),
    uploadLinkKey: uploadLinkKey(secret),
    spoolMemory: new MemoryBudget(config.uploads.uploadSpoolMemory),
    blobCache: new BlobCache(config.downloads.downloadCacheBytes),
    resumeGrants: new ResumeGrants({
      redis: services.redis,
      key: resumeGrantKey(secret),
      ttlSeconds: config.downloads.downloadGrantTtlSeconds,
      clusterName: config.clusterName,
      trustProxy: config.urls.trustProxy,
      publicUrl: config.urls.publicUrl,
      log: services.log,
    }),
    accessKeys: new AccessKeys({ store: services.store.s3, clusterSecret: secret }),
  };
}

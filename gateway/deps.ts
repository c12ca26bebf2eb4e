/**
 * The gateway's configuration and running parts as the one GatewayDeps that
 * createApp takes: gateway/run.ts and the tests that build the app both go
 * through here, so a new setting is wired in one place.
 */
import type { GatewayConfig } from '../shared/config.js';
import type { GatewayDeps } from './http/app.js';
import { RepairQueue } from '../shared/repair-queue.js';
import { createProcessing } from './processing/process.js';
import { REPAIR_PUBLISH_TIMEOUT_MS } from './cluster/repair-requests.js';
import { uploadLinkKey } from './upload/upload-link-token.js';

/** The services run.ts builds and starts, and the two values taken from the disk. */
export type GatewayParts = Pick<
  GatewayDeps,
  'store' | 'client' | 'registry' | 'replicator' | 'counter' | 'redis' | 'amqp' | 'log' | 'spoolDir'
> & {
  /** The cluster secret: upload links are signed with a key derived from it. */
  secret: string;
};

export function gatewayDeps(config: GatewayConfig, parts: GatewayParts): GatewayDeps {
  const { secret, ...services } = parts;
  return {
    ...services,
    nodes: config.nodes,
    gatewayId: config.gatewayId,
    copies: config.replicationFactor,
    quorum: config.writeQuorum,
    maxUploadBytes: config.maxUploadBytes,
    maxFilesPerUpload: config.maxFilesPerUpload,
    allowedTypes: config.allowedTypes,
    limits: config,
    urls: config,
    clusterName: config.clusterName,
    repairs: new RepairQueue({
      redis: services.redis,
      prefix: config.clusterName,
      publish: (job) =>
        services.amqp.publish(services.amqp.names.replicaRepair, job, {
          timeoutMs: REPAIR_PUBLISH_TIMEOUT_MS,
        }),
    }),
    processing: createProcessing(config),
    uploadToken: config.uploadToken,
    adminToken: config.adminToken,
    uploadLinkKey: uploadLinkKey(secret),
    rateLimits: config.rateLimits,
    metricsToken: config.metricsToken,
  };
}

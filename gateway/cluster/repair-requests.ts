/**
 * What the gateway tells the workers about replicas: a blob to repair (a
 * write that placed fewer copies than wanted, a read that found a replica
 * missing or corrupt) and a node to check (it came back, or its scrub found
 * corrupt blobs). A repair asked for while RabbitMQ is down is held and sent
 * once it is back; a node check is best effort (the repair sweep finds the
 * same work later).
 */
import type { JobPublisher } from '../../shared/amqp.js';
import type { Logger } from '../../shared/logger.js';
import type { RepairQueue } from '../../shared/repair-queue.js';

export interface RepairRequestDeps {
  amqp: JobPublisher;
  log: Logger;
}

/** How long a request waits for RabbitMQ before it gives the work up to the sweep. */
export const REPAIR_PUBLISH_TIMEOUT_MS = 2000;

/**
 * Queues a repair of blob `key`, unless one is already waiting
 * (shared/repair-queue.ts). While RabbitMQ is away the request is held and
 * sent when it is back (resendHeldRepairs).
 */
export async function requestRepair(
  deps: RepairRequestDeps & { repairs: RepairQueue },
  fileId: string,
  key = fileId,
) {
  if (!deps.amqp.connected) return deps.repairs.hold(fileId, key);
  try {
    await deps.repairs.request(fileId, key);
  } catch (err) {
    deps.repairs.hold(fileId, key);
    deps.log.warn(
      { fileId, key, err: (err as Error).message },
      'could not queue; held until RabbitMQ is back',
    );
  }
}

/** Sends the repairs held while RabbitMQ was away (run at every reconnect). */
export async function resendHeldRepairs(deps: RepairRequestDeps & { repairs: RepairQueue }) {
  const held = deps.repairs.heldCount;
  if (held === 0) return;
  const sent = await deps.repairs.resendHeld();
  deps.log.info(
    { held, sent, still_held: deps.repairs.heldCount },
    'repairs held while RabbitMQ was away sent',
  );
}

export async function requestNodeCheck(deps: RepairRequestDeps, node: string, why: string) {
  deps.log.info({ node, why }, 'queueing anti-entropy');
  await publish(deps, deps.amqp.names.nodeCheck, { node });
}

async function publish(deps: RepairRequestDeps, queue: string, body: object) {
  if (!deps.amqp.connected) return; // the repair sweep covers it
  try {
    await deps.amqp.publish(queue, body, { timeoutMs: REPAIR_PUBLISH_TIMEOUT_MS });
  } catch (err) {
    deps.log.warn({ queue, body, err: (err as Error).message }, 'could not queue; the sweep will');
  }
}

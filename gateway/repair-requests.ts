/**
 * What the gateway tells the workers about replicas: a blob to repair (a
 * write that placed fewer copies than wanted, a read that found a replica
 * missing or corrupt) and a node to check (it came back, or its scrub found
 * corrupt blobs). Best effort: if
 * RabbitMQ is down the worker's repair sweep finds the same work later.
 */
import type { AmqpClient } from '../shared/amqp.js';
import type { Logger } from '../shared/logger.js';

export interface RepairRequestDeps {
  amqp: AmqpClient;
  log: Logger;
}

export async function requestRepair(deps: RepairRequestDeps, fileId: string, key = fileId) {
  await publish(deps, deps.amqp.names.replicaRepair, { fileId, key });
}

export async function requestNodeCheck(deps: RepairRequestDeps, node: string, why: string) {
  deps.log.info({ node, why }, 'queueing anti-entropy');
  await publish(deps, deps.amqp.names.nodeCheck, { node });
}

async function publish(deps: RepairRequestDeps, queue: string, body: object) {
  if (!deps.amqp.connected) return; // the repair sweep covers it
  try {
    await deps.amqp.publish(queue, body, { timeoutMs: 2000 });
  } catch (err) {
    deps.log.warn({ queue, body, err: (err as Error).message }, 'could not queue; the sweep will');
  }
}

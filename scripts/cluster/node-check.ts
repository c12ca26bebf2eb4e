/**
 * Asking a storage node who it is and what it holds (GET /health, which needs
 * no secret), before `add` lets a url into the layout and before `remove`
 * drops a node that may still hold blobs.
 */
import { request } from 'undici';
import type { NodeHealth } from '../../shared/node-protocol.js';

/** The part of a node's GET /health the checks read. */
export type NodeIdentity = Pick<NodeHealth, 'id' | 'objects'>;

/** GET <url>/health; throws when the node does not answer it as a storage node does. */
export type HealthProbe = (url: string) => Promise<NodeIdentity>;

/** Time a node gets to answer; an operator is waiting. */
const HEALTH_TIMEOUT_MS = 5000;

export const fetchNodeHealth: HealthProbe = async (url) => {
  const res = await request(`${url}/health`, {
    headersTimeout: HEALTH_TIMEOUT_MS,
    bodyTimeout: HEALTH_TIMEOUT_MS,
    signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET /health answered ${res.statusCode}`);
  let body: Partial<NodeIdentity> | undefined;
  try {
    body = JSON.parse(text) as Partial<NodeIdentity>;
  } catch {
    body = undefined;
  }
  if (typeof body?.id !== 'string' || typeof body.objects !== 'number') {
    throw new Error('GET /health did not answer as a Trove storage node (no id and objects)');
  }
  return { id: body.id, objects: body.objects };
};

/** Why a probe failed, in a few words (undici's errors carry a code; a timeout its name). */
export function probeFailure(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string };
  if (e.name === 'TimeoutError') return `no answer within ${HEALTH_TIMEOUT_MS / 1000} s`;
  return e.code && !e.message?.includes(e.code)
    ? `${e.code}: ${e.message}`
    : (e.message ?? String(err));
}

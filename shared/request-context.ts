/**
 * The request id of the work in hand, so one upload can be followed across
 * processes: the gateway takes it from `X-Request-Id` (or makes one), sends it
 * to the storage nodes and puts it on the jobs it queues; the worker runs each
 * job under the id its message carries. AsyncLocalStorage carries it through
 * every await, so no function has to pass it along; the logger reads it from
 * here and writes it as `request_id` on every line.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/** The HTTP header (and AMQP message header) that carries the id between processes. */
export const REQUEST_ID_HEADER = 'x-request-id';

export interface RequestContext {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

// Ids end up in log lines and response headers: keep them short and free of anything odd.
const VALID_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function isValidRequestId(id: unknown): id is string {
  return typeof id === 'string' && VALID_ID.test(id);
}

export function newRequestId(): string {
  return randomUUID();
}

/** `incoming` when it is an acceptable id (1-128 of [A-Za-z0-9._:-]), else a new random one. */
export function requestIdFrom(incoming: unknown): string {
  return isValidRequestId(incoming) ? incoming : newRequestId();
}

/** Runs `fn` (and everything it awaits or schedules) with `requestId` as the current id. */
export function runWithRequestId<T>(requestId: string, fn: () => T): T {
  return storage.run({ requestId }, fn);
}

/** The id of the request or job being handled, or undefined outside of one. */
export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}

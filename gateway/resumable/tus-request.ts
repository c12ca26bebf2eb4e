/**
 * What the tus data store needs to know of the HTTP request it serves, which
 * @tus/server does not pass it (its `write` gets a stream, an id and an
 * offset): set by the route around the tus handler, read by the store.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ExpectedChecksum } from './upload-checksum.js';
import type { LinkUpload } from '../upload/upload-links.js';

export interface TusRequest {
  /** The client as the rate limits and the per-client limit count it. */
  client: string;
  /** Content-Length of the request, when sent: a body that ends short of it was cut off. */
  contentLength?: number;
  /** Upload-Checksum of a PATCH (checksum extension). */
  checksum?: ExpectedChecksum;
  /** The signed upload link a creation comes through (`?link=`). */
  link?: LinkUpload;
}

const requests = new AsyncLocalStorage<TusRequest>();

export function runTusRequest<T>(request: TusRequest, fn: () => T): T {
  return requests.run(request, fn);
}

/** The request being served; throws outside of one (a bug). */
export function currentTusRequest(): TusRequest {
  const request = requests.getStore();
  if (!request) throw new Error('tus data store used outside of a request');
  return request;
}

/**
 * The Node request as @tus/server takes it (a web Request), with a body
 * stream that passes the request's chunks on as they are.
 *
 * srvx's NodeRequest makes its body with Node's Readable.toWeb, which copies
 * every chunk into a new Uint8Array (to detach it from a pool, for readers
 * that transfer buffers), and @tus/server turns it back into a Node stream
 * at once: for a 256 MiB tus upload those copies made garbage collection a
 * third of the gateway's CPU (a --cpu-prof of the gateway, 31.6 % of its
 * busy time against 4.2 % for the same file in one PUT). Nothing on this
 * path transfers a buffer, so the chunks need no copy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished } from 'node:stream';
import { NodeRequest } from 'srvx/node';

/** `incoming` as @tus/server takes it: srvx's request, with its body passed on chunk for chunk. */
export function tusRequestOf(incoming: IncomingMessage, outgoing: ServerResponse): Request {
  const request = new NodeRequest({ req: incoming, res: outgoing });
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  let body: ReadableStream<Uint8Array> | undefined;
  // An own property, read instead of NodeRequest's getter (which would use Readable.toWeb);
  // made when first read, as that one is: a request tus refuses first is left alone.
  Object.defineProperty(request, 'body', {
    get: () => (hasBody ? (body ??= webBodyOf(incoming)) : null),
  });
  return request;
}

/**
 * `incoming` as a web stream, chunk for chunk, with backpressure: the
 * request is paused while the stream's queue is full (a byte-length queue
 * of the request's own high-water mark), as Readable.toWeb does.
 */
export function webBodyOf(incoming: IncomingMessage): ReadableStream<Uint8Array> {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let canceled = false;
  incoming.pause();
  const cleanup = finished(incoming, (err) => {
    cleanup();
    // An 'error' after the end (a legacy stream) must not crash the gateway.
    incoming.on('error', () => {});
    if (canceled) return;
    if (err) controller.error(asAbort(err));
    else controller.close();
  });
  incoming.on('data', (chunk: Buffer) => {
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 0) <= 0) incoming.pause();
  });
  return new ReadableStream<Uint8Array>(
    {
      start: (c) => void (controller = c),
      pull: () => void incoming.resume(),
      cancel: (reason: unknown) => {
        canceled = true;
        incoming.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: incoming.readableHighWaterMark }),
  );
}

/** A request cut off reads as an abort, as Readable.toWeb reports it (tus answers it as such). */
function asAbort(err: Error): Error {
  if ((err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') return err;
  return Object.assign(new Error('The operation was aborted', { cause: err }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

/** An AbortSignal that fires when the client goes away before the exchange is complete. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ClientGoneError } from '../../shared/errors.js';

/**
 * Fires when the response closes unfinished or, if `upload` is given, when the
 * request body closes before its end (an upload cut off mid-stream).
 */
export function disconnectSignal(outgoing: ServerResponse, upload?: IncomingMessage): AbortSignal {
  const controller = new AbortController();
  const abort = () => controller.abort(new ClientGoneError());
  outgoing.once('close', () => {
    if (!outgoing.writableFinished) abort();
  });
  upload?.once('close', () => {
    if (!upload.readableEnded) abort();
  });
  return controller.signal;
}

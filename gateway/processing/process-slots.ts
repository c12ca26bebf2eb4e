/**
 * Bounded concurrency of image processing: a counting semaphore that never
 * queues. A decode holds a whole image in memory and a core busy, so past
 * PROCESS_CONCURRENCY the honest answer is a 503 with Retry-After at once,
 * not a queue that grows with the load until memory runs out. /process and
 * /batch take a slot only once their input is on disk: a slot bounds decodes,
 * and a client sending its body slowly holds none.
 */
import { UnavailableError } from '../../shared/errors.js';

export type Release = () => void;

export class ProcessSlots {
  private used = 0;

  constructor(readonly size: number) {}

  get inUse(): number {
    return this.used;
  }

  /** A release function (idempotent), or undefined when every slot is taken. */
  tryAcquire(): Release | undefined {
    if (this.used >= this.size) return undefined;
    this.used++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used--;
    };
  }

  /** Takes a slot or throws the 503 (the error handler adds Retry-After). */
  acquire(): Release {
    const release = this.tryAcquire();
    if (release) return release;
    throw new UnavailableError(
      `all ${this.size} image processing slots are busy (PROCESS_CONCURRENCY); try again shortly`,
      'PROCESSING_BUSY',
    );
  }
}

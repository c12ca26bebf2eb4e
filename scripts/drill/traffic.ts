/**
 * User traffic that runs through the whole drill: closed-loop clients, each
 * sending its next request when the previous one is answered, three verified
 * downloads of a random known file for every upload. New uploads join the
 * pool, so files written while a node is down are read back too.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { StoredFile, TroveClient } from './client.js';

/** One upload in this many requests. */
const UPLOAD_EVERY = 4;
/** A client pauses after a failure, so a dead gateway is not hammered in a tight loop. */
const PAUSE_AFTER_FAILURE_MS = 100;

export class Traffic {
  private running = false;
  private clients: Promise<void>[] = [];
  private seq = 0;

  constructor(
    private readonly client: TroveClient,
    /** Every file known to be stored; the traffic adds its own uploads. */
    readonly pool: StoredFile[],
    private readonly concurrency: number,
  ) {}

  start(): void {
    this.running = true;
    this.clients = Array.from({ length: this.concurrency }, () => this.loop());
  }

  /** Stops taking new requests and waits for those in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.clients);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const n = this.seq++;
      const ok =
        n % UPLOAD_EVERY === UPLOAD_EVERY - 1 || this.pool.length === 0
          ? await this.uploadOne(n)
          : await this.client.download(this.pool[Math.floor(Math.random() * this.pool.length)]!);
      if (!ok) await sleep(PAUSE_AFTER_FAILURE_MS);
    }
  }

  private async uploadOne(n: number): Promise<boolean> {
    const file = await this.client.upload(`traffic-${n}`);
    if (file) this.pool.push(file);
    return file !== undefined;
  }
}

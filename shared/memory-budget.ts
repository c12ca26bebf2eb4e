/**
 * Bytes a process lets one kind of in-memory buffering use at once, shared
 * by every request: the gateway's upload spool (UPLOAD_SPOOL_MEMORY), a
 * storage node's small blobs taken whole. Whoever finds it full streams or
 * spools instead, so memory stays bounded however many requests arrive.
 */
export class MemoryBudget {
  private used = 0;

  constructor(readonly size: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes `bytes` if they fit; false (nothing taken) if not. */
  tryTake(bytes: number): boolean {
    if (this.used + bytes > this.size) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

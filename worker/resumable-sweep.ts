/**
 * Removes what resumable uploads leave on the nodes (runs with the expiry
 * sweep): the parts of uploads that expired incomplete (their `Upload-Expires`
 * passed), that the client terminated, or that finished while a node was
 * away, then the rows whose parts are gone (a finished upload's row stays
 * until it expires, for GET /tus/:id). Idempotent: several workers may sweep.
 */
import type { Logger } from '../shared/logger.js';
import type { MetadataStore } from '../shared/metadata-store.js';
import { removeParts, type PartRemovalDeps } from '../shared/resumable-parts.js';

export interface ResumableSweepDeps extends PartRemovalDeps {
  store: MetadataStore;
  log: Logger;
}

const BATCH = 200;

export class ResumableSweep {
  constructor(private readonly deps: ResumableSweepDeps) {}

  /** One pass; returns what it did. */
  async run(now = Date.now()): Promise<{ expired: number; removed: number; owed: number }> {
    const { store } = this.deps;
    let expired = 0;
    let removed = 0;
    let owed = 0;
    for (const upload of await store.staleResumables(now, BATCH)) {
      // From here on no request can add to it (storePart needs `uploading`).
      if (upload.state === 'uploading' && (await store.endResumable(upload.id, 'terminated')))
        expired++;
      const left = await removeParts(this.deps, upload);
      owed += left;
      if (left > 0 || (upload.state === 'done' && upload.expiresAt > now)) continue;
      await store.forgetResumable(upload.id);
      removed++;
    }
    return { expired, removed, owed };
  }
}

/**
 * Storage node entry point: `npm run storage-node -- --id node2`.
 *
 * V8's memory settings (shared/memory-tuning.ts) go first, before the service
 * is even loaded: loading it already grows the young generation they keep small.
 */
import { tuneMemory } from '../shared/memory-tuning.js';

// Without the old-generation flag: it made streaming large blobs collect far too often.
tuneMemory({ oldGeneration: false });
await import('./run.js');

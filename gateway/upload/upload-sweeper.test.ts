import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../../shared/errors.js';
import { createLogger } from '../../shared/logger.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import type { Replicator } from '../cluster/replicator.js';
import { UploadSweeper } from './upload-sweeper.js';

describe('UploadSweeper', () => {
  it('lets a pass fail quietly while the database is down (a rejection would crash the gateway)', async () => {
    let calls = 0;
    const store = {
      abandonedUploads: async () => {
        calls++;
        throw new UnavailableError('the metadata database is unavailable', 'DATABASE_UNAVAILABLE');
      },
    } as unknown as MetadataStore;
    const sweeper = new UploadSweeper({
      store,
      replicator: {} as Replicator,
      log: createLogger('test', 'silent'),
      gatewayId: 'gw',
      pendingTimeoutMs: 60_000,
    });
    await expect(sweeper.sweep()).resolves.toBe(0);
    // The next pass tries again.
    await expect(sweeper.sweep()).resolves.toBe(0);
    expect(calls).toBe(2);
  });
});

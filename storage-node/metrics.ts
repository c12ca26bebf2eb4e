/**
 * A storage node's metrics (docs/metrics.md): blob bytes written, sent and
 * read from disk, and, at scrape time, what its disk holds and what the scrub found.
 * GET /metrics (storage-node/app.ts) serves `registry`.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  createHttpMetrics,
  createRegistry,
  METRIC_PREFIX as P,
  type HttpMetrics,
} from '../shared/metrics.js';
import type { BlobStore } from './blob-store.js';
import type { ScrubStatus } from './scrubber.js';

export interface NodeMetricsDeps {
  store: Pick<BlobStore, 'usage' | 'bytesReadFromDisk'>;
  scrubStatus?: () => ScrubStatus;
}

export class NodeMetrics {
  readonly registry: Registry = createRegistry();
  readonly http: HttpMetrics = createHttpMetrics(this.registry);

  private readonly bytesWritten = new Counter({
    name: `${P}node_blob_bytes_written_total`,
    help: 'Bytes of blobs this node committed to its own disk (PUT /blobs/:key, from the gateway, a chain predecessor or a repair)',
    registers: [this.registry],
  });
  private readonly blobsWritten = new Counter({
    name: `${P}node_blobs_written_total`,
    help: 'Blobs this node committed to its own disk',
    registers: [this.registry],
  });
  private readonly bytesComposed = new Counter({
    name: `${P}node_blob_bytes_composed_total`,
    help: 'Bytes of blobs this node composed from parts on its own disk and committed (POST /blobs/:key/compose)',
    registers: [this.registry],
  });
  private readonly blobsComposed = new Counter({
    name: `${P}node_blobs_composed_total`,
    help: 'Blobs this node composed from parts and committed',
    registers: [this.registry],
  });
  private readonly bytesRead = new Counter({
    name: `${P}node_blob_bytes_read_total`,
    help: 'Bytes of blobs sent in answer to GET /blobs/:key, counted as they stream out',
    registers: [this.registry],
  });

  constructor(deps: NodeMetricsDeps) {
    // Counted by the store as it reads; a ranged read costs the blocks it touches, not the blob.
    let diskReadSeen = 0;
    new Counter({
      name: `${P}node_blob_disk_read_bytes_total`,
      help: 'Bytes this node read from disk to serve blob reads (blob data and block sums; not the scrub)',
      registers: [this.registry],
      collect() {
        const now = deps.store.bytesReadFromDisk();
        this.inc(now - diskReadSeen);
        diskReadSeen = now;
      },
    });
    const usage = () => deps.store.usage().catch(() => undefined);
    const disk = (name: string, help: string, pick: (u: Usage) => number) =>
      new Gauge({
        name: `${P}node_${name}`,
        help,
        registers: [this.registry],
        async collect() {
          const u = await usage();
          if (u) this.set(pick(u));
          else this.reset();
        },
      });
    disk('blobs', 'Blobs on this node (originals and variants), at scrape time', (u) => u.objects);
    disk('blob_bytes', 'Bytes of the blobs on this node, at scrape time', (u) => u.bytes);
    disk('disk_free_bytes', "Free bytes of the node's data file system", (u) => u.freeBytes);
    disk('disk_total_bytes', "Size of the node's data file system", (u) => u.totalBytes);
    const scrub = deps.scrubStatus;
    if (scrub) {
      new Gauge({
        name: `${P}node_scrub_corrupt_found`,
        help: 'Corrupt blobs the scrub quarantined since this node started',
        registers: [this.registry],
        collect() {
          this.set(scrub().corrupt_found);
        },
      });
    }
  }

  blobWritten(bytes: number): void {
    this.blobsWritten.inc();
    this.bytesWritten.inc(bytes);
  }

  blobComposed(bytes: number): void {
    this.blobsComposed.inc();
    this.bytesComposed.inc(bytes);
  }

  blobRead(bytes: number): void {
    this.bytesRead.inc(bytes);
  }
}

type Usage = Awaited<ReturnType<BlobStore['usage']>>;

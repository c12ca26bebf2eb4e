/**
 * Which metadata store a process opens: PostgreSQL when DATABASE_URL is set
 * (gateways and workers on several hosts), else the embedded SQLite file at
 * DB_PATH (one host).
 */
import pRetry from 'p-retry';
import type { Logger } from './logger.js';
import type { MetadataStore } from './metadata-store.js';
import { PostgresMetadataStore, isConnectionError } from './postgres-metadata-store.js';
import { SqliteMetadataStore, openDatabase } from './sqlite-metadata-store.js';

export interface MetadataStoreConfig {
  databaseUrl?: string | undefined;
  databasePoolSize: number;
  dbPath: string;
}

/**
 * Opens the store. PostgreSQL may still be starting (compose, a reboot): a
 * refused connection is retried with backoff for about a minute; anything
 * else (a wrong password, a missing database) fails at once.
 */
export async function openMetadataStore(
  c: MetadataStoreConfig,
  log: Logger,
): Promise<MetadataStore> {
  const url = c.databaseUrl;
  if (url) {
    return pRetry(() => PostgresMetadataStore.open({ url, poolSize: c.databasePoolSize, log }), {
      retries: 25,
      minTimeout: 200,
      maxTimeout: 3000,
      shouldRetry: ({ error }) => isConnectionError(error),
      onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
        if (retriesLeft > 0 && isConnectionError(error))
          log.warn({ err: error.message, attempt: attemptNumber }, 'PostgreSQL not reachable yet');
      },
    });
  }
  return new SqliteMetadataStore(openDatabase(c.dbPath));
}

/** The store as a log line may show it: the database URL without its password, or the file. */
export function describeMetadataStore(c: MetadataStoreConfig): string {
  if (!c.databaseUrl) return c.dbPath;
  const url = new URL(c.databaseUrl);
  if (url.password) url.password = '***';
  return url.toString();
}

/**
 * PostgreSQL for tests: the server on this machine (127.0.0.1:5432, trust
 * authentication; `.ci/run` starts it), a database of its own per test file
 * or test, dropped afterwards. TROVE_TEST_PG_URL points elsewhere.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Where test databases are created from (any database the user may connect to). */
export const PG_ADMIN_URL =
  process.env.TROVE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  url: string;
  name: string;
  /** Drops the database, closing whatever connections are still open to it. */
  drop(): Promise<void>;
}

/** A new, empty database named after `label`. */
export async function createDatabase(label: string): Promise<TestDatabase> {
  const name = `trove_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/** Runs one statement on `url`, as another client would (a test's view of the database). */
export async function queryPg<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Command-line flags of `npm run metadata:copy`. */
import { intFlag, parseFlags, UsageError } from '../cli-flags.js';

export interface CopyFlags {
  /** The PostgreSQL database to fill (a DATABASE_URL). */
  to: string;
  /** The SQLite file; undefined: DB_PATH as the services resolve it. */
  from: string | undefined;
  /** Rows per INSERT and per FETCH. */
  batchSize: number;
}

export const USAGE = `usage: npm run metadata:copy -- --to <postgres://…> [--from <trove.db>] [--batch <n>]

  --to <url>      the PostgreSQL database to fill; it must hold no files, replicas, variants
                  or layout versions
                  (its schema is created or migrated first)
  --from <path>   the SQLite store (default: DB_PATH, as the services resolve it from the
                  environment and .env: STORAGE_DIR/trove.db)
  --batch <n>     rows per INSERT (default 1000)

Stop every gateway and worker first. The copy is one transaction, checked before
it commits (row counts and a sha256 per table); the SQLite file is only read.
Exit code: 0 copied and checked; 1 a table differs (nothing committed) or it
failed; 2 refused (a flag, an unreadable or outdated source, a non-empty target).`;

export { UsageError };

export function parseCopyFlags(argv: string[]): CopyFlags | 'help' {
  const values = parseFlags(argv, {
    to: { type: 'string' },
    from: { type: 'string' },
    batch: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  if (values.to === undefined) throw new UsageError('--to <postgres://…> is required');
  if (!/^postgres(ql)?:\/\//.test(values.to) || !URL.canParse(values.to)) {
    throw new UsageError('--to: not a postgres:// or postgresql:// URL');
  }
  const batchSize = intFlag('batch', values.batch, 1000, 100_000);
  if (values.from === '') throw new UsageError('--from: empty path');
  return { to: values.to, from: values.from, batchSize };
}

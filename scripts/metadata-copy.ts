/**
 * `npm run metadata:copy -- --to postgres://…`: moves the metadata of a
 * SQLite store (DB_PATH, or --from) into an empty PostgreSQL database, every
 * column of files, replicas, variants, layout versions and the S3 tables
 * (access keys, buckets, objects), in one checked
 * transaction. See docs/deployment.md, "Moving to PostgreSQL".
 *
 * Exit code: 0 when copied and every table's count and checksum match; 1
 * when a table differs (nothing is committed) or the copy failed; 2 when it
 * was refused (a flag, the source, or a target that is not empty).
 */
import { ConfigError, loadCommonConfig, loadDotEnv } from '../shared/config.js';
import { CopyRefusedError, copyMetadata, redactUrl } from './metadata-copy/copy.js';
import { USAGE, UsageError, parseCopyFlags, type CopyFlags } from './metadata-copy/options.js';
import { renderCopyReport } from './metadata-copy/report.js';

function parseFlags(): CopyFlags | number {
  try {
    const parsed = parseCopyFlags(process.argv.slice(2));
    if (parsed !== 'help') return parsed;
    console.log(USAGE);
    return 0;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`metadata:copy: ${err.message}\n\n${USAGE}`);
    return 2;
  }
}

/** DB_PATH as gateways and workers resolve it: the environment, else `.env`, else STORAGE_DIR/trove.db. */
function defaultSource(): string {
  loadDotEnv();
  return loadCommonConfig(process.env).dbPath;
}

async function main(): Promise<number> {
  const flags = parseFlags();
  if (typeof flags === 'number') return flags;
  let from: string;
  try {
    from = flags.from ?? defaultSource();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`metadata:copy: ${err.message}\n(or name the file with --from)`);
    return 2;
  }
  const to = redactUrl(flags.to);
  console.error(`metadata:copy: ${from} → ${to}`);
  try {
    const result = await copyMetadata({
      from,
      to: flags.to,
      batchSize: flags.batchSize,
      progress: (line) => console.error(`metadata:copy: ${line}`),
    });
    console.log(renderCopyReport(result, from, to));
    return result.committed ? 0 : 1;
  } catch (err) {
    if (!(err instanceof CopyRefusedError)) throw err;
    console.error(`metadata:copy: refused: ${err.message}`);
    return 2;
  }
}

process.exitCode = await main().catch((err: Error) => {
  console.error(`metadata:copy: failed, nothing was committed: ${err.stack ?? err.message}`);
  return 1;
});

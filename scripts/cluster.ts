/**
 * `npm run cluster -- show|add|set|drain|undrain|remove`: shows and changes
 * the cluster layout (docs/layout.md) in the metadata store the services use.
 * Each change is saved as a new version, which gateways and workers follow.
 *
 * Exit code: 0 done; 2 refused (a flag, the configuration, or a change the
 * layout, the store or the node does not allow); 1 failed.
 */
import { ConfigError, loadDotEnv, loadWorkerConfig } from '../shared/config.js';
import { LayoutChangeError } from '../shared/layout-changes.js';
import { createLogger } from '../shared/logger.js';
import { openMetadataStore } from '../shared/open-metadata-store.js';
import { ClusterRefusedError, runCommand } from './cluster/commands.js';
import { fetchNodeHealth } from './cluster/node-check.js';
import { USAGE, UsageError, parseClusterCommand, type ClusterCommand } from './cluster/options.js';

function parseCommand(): ClusterCommand | number {
  try {
    const parsed = parseClusterCommand(process.argv.slice(2));
    if (parsed !== 'help') return parsed;
    console.log(USAGE);
    return 0;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`cluster: ${err.message}\n\n${USAGE}`);
    return 2;
  }
}

async function main(): Promise<number> {
  const command = parseCommand();
  if (typeof command === 'number') return command;
  let config;
  try {
    // As the worker reads it: the same store, NODES and REPLICATION_FACTOR.
    loadDotEnv();
    config = loadWorkerConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`cluster: ${err.message}`);
    return 2;
  }
  // Logs (a PostgreSQL retry) go to stderr: stdout is the answer, JSON with --json.
  const log = createLogger('cluster', config.logLevel, { stream: process.stderr });
  const store = await openMetadataStore(config, log);
  try {
    await runCommand(command, {
      store,
      seedNodes: config.nodes,
      copies: config.replicationFactor,
      health: fetchNodeHealth,
      out: (line) => console.log(line),
    });
    return 0;
  } catch (err) {
    if (!(err instanceof LayoutChangeError || err instanceof ClusterRefusedError)) throw err;
    console.error(`cluster: refused: ${err.message}`);
    return 2;
  } finally {
    await store.close();
  }
}

process.exitCode = await main().catch((err: Error) => {
  console.error(`cluster: failed: ${err.stack ?? err.message}`);
  return 1;
});

// `npm run build`: transpiles the TypeScript services to plain ESM in dist/
// (one file per source file, no bundling), so they run on bare `node`:
// no loader thread, about 45 MB less memory per process than `--import tsx`.
// Type checking is `npm run typecheck`; this only strips types.
import { build } from 'esbuild';
import { cpSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const sources = ['gateway', 'storage-node', 'worker', 'shared', 'scripts'];
// The chaos drill runs through tsx (npm run chaos): its lab is the tests' harness (test/), not built.
const notBuilt = (path) =>
  path === join('scripts', 'chaos.ts') || path.startsWith(join('scripts', 'chaos', ''));

function entries(dir) {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter(
      (e) =>
        e.isFile() &&
        e.name.endsWith('.ts') &&
        !e.name.endsWith('.test.ts') &&
        !e.name.endsWith('.d.ts'),
    )
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((path) => !notBuilt(path));
}

// No wipe of dist/ first: running services may be loading from it (esbuild overwrites in place).
await build({
  absWorkingDir: root,
  entryPoints: sources.flatMap(entries),
  outdir: 'dist',
  outbase: '.',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});

// The browser page's static files, beside the built gateway (gateway/http/static-files.ts reads them from there).
cpSync(join(root, 'gateway', 'public'), join(root, 'dist', 'gateway', 'public'), {
  recursive: true,
});

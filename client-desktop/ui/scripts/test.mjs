// Unit tests of the page's pure logic (tests/*.test.ts) with Node's own test runner: Vite
// bundles each test file for Node (TypeScript and all), then `node --test` runs them.

import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = join(root, 'tests');
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.ts') && (only.length === 0 || only.some((o) => f.includes(o))))
  .map((f) => join(dir, f));
const out = join(root, '.test-build');

await build({
  root,
  configFile: false,
  logLevel: 'warn',
  build: {
    ssr: true,
    outDir: out,
    emptyOutDir: true,
    target: 'node20',
    rollupOptions: {
      input: Object.fromEntries(files.map((f) => [basename(f, '.ts'), f])),
      output: { entryFileNames: '[name].mjs', format: 'es' },
    },
  },
});

const built = files.map((f) => join(out, basename(f, '.ts') + '.mjs'));
const r = spawnSync(process.execPath, ['--test', ...built], { stdio: 'inherit' });
process.exit(r.status ?? 1);

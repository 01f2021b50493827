/**
 * Bundles the CLI (dist/cli/main.js and everything it imports, packages included) into
 * dist/cli-bundle/ with esbuild: the modules a command loads, code split by dynamic import, in
 * a few files instead of hundreds. Run by `npm run build` after tsc. bin/flotilla.js runs the
 * client commands from it (a quarter less CPU at start than loading each module: bench/README.md,
 * "CLI cold start"); every other command runs from dist/ as tsc wrote it.
 *
 * The bundle's files sit one folder below the package root, as dist/api/proto.js does, so the
 * paths that module finds relative to itself hold: ../../proto/ and ./protos.json (copied).
 */
import { build } from 'esbuild';
import { copyFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../', import.meta.url));
const out = `${dist}cli-bundle/`;

rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: { main: `${dist}cli/main.js` },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: ['node20'],
  outdir: out,
  // Native and build-time packages stay packages.
  external: ['lmdb', 'esbuild', 'vitest', 'playwright-core', 'typescript'],
  // Packages written as CommonJS call require(): give the bundle one.
  banner: { js: "import { createRequire as __flotillaCreateRequire } from 'node:module'; const require = __flotillaCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync(`${dist}api/protos.json`, `${out}protos.json`);

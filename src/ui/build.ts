/**
 * Bundles the dashboard (src/ui/web) into dist/ui with esbuild: app.js (one IIFE: the page's
 * code, uPlot, and the shared vector-clock and trace code), app.css, index.html. Run by
 * `npm run build` after tsc; the member serves these three files (src/server/ui-http.ts).
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const web = fileURLToPath(new URL('../../src/ui/web/', import.meta.url));
const out = fileURLToPath(new URL('./', import.meta.url));

mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: `${web}main.ts` },
  bundle: true,
  format: 'iife',
  target: ['es2022'],
  minify: true,
  sourcemap: false,
  outdir: out,
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync(`${web}index.html`, `${out}index.html`);

#!/usr/bin/env node
// The `flotilla` command: runs the build made at install time (`npm install` runs `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('flotilla: dist/ is missing; run `npm install` (or `npm run build`) in the checkout first.');
  process.exit(2);
}
await import(main.href);

#!/usr/bin/env node
// The `flotilla` command: runs the build made at install time (`npm install` runs `prepare`).
// The client commands run from the CLI's bundle (dist/cli-bundle: a few files instead of
// hundreds of modules, so they start sooner); every other command, and any command when the
// bundle is missing, from dist/cli/main.js.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CLIENT_COMMANDS = new Set(['get', 'put', 'del', 'txn', 'watch', 'lease', 'user', 'role', 'auth', 'lock', 'elect', 'member', 'endpoint']);

const main = new URL('../dist/cli/main.js', import.meta.url);
const bundle = new URL('../dist/cli-bundle/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('flotilla: dist/ is missing; run `npm install` (or `npm run build`) in the checkout first.');
  process.exit(2);
}
await import((CLIENT_COMMANDS.has(process.argv[2] ?? '') && existsSync(fileURLToPath(bundle)) ? bundle : main).href);

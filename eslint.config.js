// @ts-check
import js from '@eslint/js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'src');

/**
 * The layering of src/ (ARCHITECTURE.md, "Layers": the table there must list the same; a test
 * checks it): for each folder, the other folders of src/ its files may import, type-only imports
 * included (a file of the folder itself is always allowed). Files directly in src/ are a layer of
 * their own named by the file. A folder without an entry may import nothing: add it here and to
 * the table. Test files (*.test.ts) are exempt. Like VS Code's code-layering rule.
 */
export const LAYERS = {
  'lib': [],
  'trace': ['lib', 'raft'],
  'check': ['lib'],
  'raft': ['lib'],
  'storage': ['lib', 'raft'],
  'node': ['lib', 'trace', 'raft', 'storage'],
  'transport': ['lib', 'trace', 'raft', 'node'],
  'kv': ['lib', 'trace', 'raft', 'node'],
  'server': ['lib', 'trace', 'raft', 'storage', 'transport', 'node', 'kv', 'api', 'ui'],
  'api': ['lib', 'trace', 'kv', 'server'],
  'client': ['lib', 'trace', 'api'],
  'sim': ['lib', 'trace', 'check', 'raft', 'storage', 'node', 'kv', 'chain'],
  'bench': ['lib', 'raft'],
  'faults': ['lib', 'trace', 'check', 'client'],
  'fuzz': ['lib', 'trace', 'raft', 'storage', 'transport', 'node', 'kv', 'server', 'api', 'client', 'faults'],
  'ui': ['lib', 'trace'],
  'chain': ['lib'],
  'chainnode': ['lib', 'raft', 'storage', 'transport', 'chain', 'client'],
  'cli': ['lib', 'trace', 'check', 'raft', 'storage', 'transport', 'node', 'kv', 'server', 'api', 'client', 'sim', 'bench', 'faults', 'fuzz', 'chain', 'chainnode'],
  'index.ts': ['lib', 'trace', 'check', 'raft', 'storage', 'transport', 'node', 'kv', 'client'],
  'types': [],
};

/** The layer of a path relative to src/: its first folder, or the file's name for files in src/. */
const layerOf = (rel) => (rel.includes(path.sep) ? rel.split(path.sep)[0] : rel);

/** The `layering` rule: every relative import (static, dynamic, re-export, import type) of a file under src/ stays within its layer's allow-list. */
export const layering = {
  meta: {
    type: 'problem',
    schema: [],
    messages: {
      forbidden: 'src/{{from}} may not import src/{{to}} (layers allowed: {{allowed}}; see LAYERS in eslint.config.js and ARCHITECTURE.md)',
      unknown: 'src/{{from}} has no entry in LAYERS (eslint.config.js): give it its allow-list there and in ARCHITECTURE.md\'s table',
    },
  },
  create(context) {
    const file = context.filename;
    const rel = path.relative(SRC, file);
    if (rel.startsWith('..') || path.isAbsolute(rel)) return {};
    const from = layerOf(rel);
    const check = (node, source) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const target = path.relative(SRC, path.resolve(path.dirname(file), source));
      if (target.startsWith('..') || path.isAbsolute(target)) return;
      const to = layerOf(target);
      if (to === from) return;
      const allowed = Object.hasOwn(LAYERS, from) ? LAYERS[from] : undefined;
      if (allowed === undefined) context.report({ node, messageId: 'unknown', data: { from } });
      else if (!allowed.includes(to)) context.report({ node, messageId: 'forbidden', data: { from, to, allowed: allowed.join(', ') || 'none' } });
    };
    return {
      ImportDeclaration: (n) => check(n, n.source.value),
      ExportNamedDeclaration: (n) => n.source && check(n, n.source.value),
      ExportAllDeclaration: (n) => check(n, n.source.value),
      ImportExpression: (n) => n.source.type === 'Literal' && check(n, n.source.value),
      TSImportType: (n) => check(n, n.argument?.literal?.value ?? n.argument?.value),
    };
  },
};

// src/raft is the pure core: it must not touch the outside world. Time comes in as tick(),
// randomness from an injected seeded PRNG, and all I/O is done by whoever drives the core.
const pureCoreRestrictions = {
  'no-restricted-imports': ['error', {
    patterns: [
      { group: ['node:*'], message: 'src/raft is pure: no node:* imports.' },
      { group: ['fs', 'fs/*', 'net', 'os', 'path', 'child_process', 'timers', 'timers/*', 'crypto', 'http', 'https', 'dgram', 'worker_threads', 'process'], message: 'src/raft is pure: no I/O modules.' },
    ],
  }],
  'no-restricted-globals': ['error',
    { name: 'Date', message: 'src/raft is pure: time is ticks.' },
    { name: 'setTimeout', message: 'src/raft is pure: no timers.' },
    { name: 'setInterval', message: 'src/raft is pure: no timers.' },
    { name: 'setImmediate', message: 'src/raft is pure: no timers.' },
    { name: 'queueMicrotask', message: 'src/raft is pure: no scheduling.' },
    { name: 'process', message: 'src/raft is pure: no process access.' },
    { name: 'performance', message: 'src/raft is pure: no clocks.' },
    { name: 'Promise', message: 'src/raft is pure and synchronous.' },
    { name: 'fetch', message: 'src/raft is pure: no I/O.' },
    { name: 'require', message: 'src/raft is pure.' },
  ],
  'no-restricted-properties': ['error',
    { object: 'Math', property: 'random', message: 'src/raft is pure: use the injected PRNG.' },
  ],
  'no-restricted-syntax': ['error',
    { selector: 'FunctionDeclaration[async=true], ArrowFunctionExpression[async=true], FunctionExpression[async=true]', message: 'src/raft is synchronous.' },
    { selector: 'AwaitExpression', message: 'src/raft is synchronous.' },
  ],
};

// src/sim must be a pure function of its seed: no wall clock, no timers, no ambient randomness.
const deterministicSim = {
  'no-restricted-globals': ['error',
    { name: 'Date', message: 'src/sim is deterministic: use virtual time.' },
    { name: 'setTimeout', message: 'src/sim is deterministic: schedule events instead.' },
    { name: 'setInterval', message: 'src/sim is deterministic: schedule events instead.' },
    { name: 'setImmediate', message: 'src/sim is deterministic: schedule events instead.' },
    { name: 'performance', message: 'src/sim is deterministic: use virtual time.' },
  ],
  'no-restricted-properties': ['error',
    { object: 'Math', property: 'random', message: 'src/sim is deterministic: use the seeded PRNG.' },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', performance: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setImmediate: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', Buffer: 'readonly', fetch: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/**/*.test.ts'],
    plugins: { local: { rules: { layering } } },
    rules: { 'local/layering': 'error' },
  },
  {
    files: ['src/sim/**/*.ts'],
    ignores: ['src/sim/**/*.test.ts'],
    rules: deterministicSim,
  },
  {
    files: ['src/raft/**/*.ts'],
    ignores: ['src/raft/**/*.test.ts'],
    rules: pureCoreRestrictions,
  },
  // src/chain (the chain replication protocol core) is pure in the same way as src/raft.
  {
    files: ['src/chain/**/*.ts'],
    ignores: ['src/chain/**/*.test.ts'],
    rules: {
      ...pureCoreRestrictions,
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*'], message: 'src/chain is pure: no node:* imports.' },
          { group: ['fs', 'fs/*', 'net', 'os', 'path', 'child_process', 'timers', 'timers/*', 'crypto', 'http', 'https', 'dgram', 'worker_threads', 'process'], message: 'src/chain is pure: no I/O modules.' },
          { group: ['../*', '!../lib', '!../lib/*'], message: 'src/chain imports only src/lib.' },
        ],
      }],
    },
  },
);

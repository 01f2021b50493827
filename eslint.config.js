// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// src/raft is the pure core: it must not touch the outside world. Time comes in as tick(),
// randomness from an injected seeded PRNG, and all I/O is done by whoever drives the core.
const pureCoreRestrictions = {
  'no-restricted-imports': ['error', {
    patterns: [
      { group: ['node:*'], message: 'src/raft is pure: no node:* imports.' },
      { group: ['fs', 'fs/*', 'net', 'os', 'path', 'child_process', 'timers', 'timers/*', 'crypto', 'http', 'https', 'dgram', 'worker_threads', 'process'], message: 'src/raft is pure: no I/O modules.' },
      { group: ['../sim/*', '../sim', '../check/*', '../cli/*', '../node/*', '../storage/*', '../transport/*'], message: 'src/raft imports only src/lib.' },
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

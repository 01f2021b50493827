import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Three test files at a time: most of them wait on member processes (timers, sockets), not
    // the CPU, so three overlap well on 2 cores (two left the cores idle for a third of the
    // run); the suite stays under 15 minutes.
    poolOptions: { forks: { minForks: 1, maxForks: 3 } },
  },
});

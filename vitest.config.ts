import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at a time: most of them wait on member processes (timers, sockets), not
    // the CPU, so two overlap well on 2 cores; the suite stays under 15 minutes.
    poolOptions: { forks: { minForks: 1, maxForks: 2 } },
  },
});

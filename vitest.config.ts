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
    // No knob for the worker's RPC timeout: vitest 3.2 calls its runner with birpc's fixed 60 s
    // (no option reaches createRuntimeRpc). A test file that holds its event loop longer (a
    // synchronous loop; on a loaded machine even a minute of CPU becomes several) gets
    // "[vitest-worker]: Timeout calling onTaskUpdate" and fails the run, although its tests pass:
    // long synchronous work yields between steps (runSweep does, between runs).
  },
});

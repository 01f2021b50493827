/**
 * One turn of this process's event loop. A test that runs synchronous work for long (a loop of
 * simulations) awaits it between steps: vitest's worker must answer its runner's RPC within 60 s
 * (not configurable, see vitest.config.ts), and on a loaded machine a minute of CPU becomes several.
 */
export function eventLoopTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

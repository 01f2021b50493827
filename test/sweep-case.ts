import { expect, it } from 'vitest';
import type { SimDriver } from '../src/sim/simulation.js';
import type { SimStore } from '../src/sim/settings.js';
import { formatFailure, runSweep } from '../src/sim/sweep.js';

/**
 * One slice of the default sweep as a test. The sweep is split in files (sim-sweep-*.test.ts)
 * so the slices run in parallel; together they cover 1200 consecutive seeds with the node
 * driver (the server's shell and storage code on a crashing in-memory disk; 1151..1200 of them
 * on the real store, sim-store.test.ts) and 1000 with the bare core, every cluster size 3..7 and every fault kind. A failure prints its seed, the broken invariant and the last
 * events; `npx flotilla sim --seed S --runs 1 [--driver core]` replays it.
 */
/** Generous: a slice takes about a minute alone on 2 cores, several when the machine is busy. */
export const SWEEP_TIMEOUT_MS = 900_000;

export function sweepCase(firstSeed: number, runs: number, driver: SimDriver = 'node', store: SimStore = 'sim'): void {
  const last = firstSeed + runs - 1;
  const what = `${driver} driver${store === 'real' ? ', real store' : ''}`;
  it(`${what}: seeds ${firstSeed}..${last} run clean`, async () => {
    const started = performance.now();
    const s = await runSweep({ firstSeed, runs, stopOnFailure: false, driver, store });
    const t = s.totals;
    console.log(
      `sweep (${what}) ${firstSeed}..${last}: ${s.runs} runs in ${((performance.now() - started) / 1000).toFixed(1)}s, ${t.leaders} leaders, ` +
        `${t.opsOk}/${t.ops} ops ok, ${t.crashes} crashes, ${t.partitions} partitions, ${t.pauses} pauses, ${t.confChanges} conf changes`,
    );
    expect(s.failures.map(formatFailure).join('\n\n')).toBe('');
    expect(s.runs).toBe(runs);
    // A sweep is a fixed amount of work: on a loaded machine it takes longer, it does not fail.
  }, SWEEP_TIMEOUT_MS);
}

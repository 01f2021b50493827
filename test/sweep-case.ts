import { expect, it } from 'vitest';
import { formatFailure, runSweep } from '../src/sim/sweep.js';

/**
 * One slice of the default sweep as a test. The sweep is split in files (sim-sweep-*.test.ts)
 * so the slices run in parallel; together they cover 2000 consecutive seeds, every cluster
 * size 3..7 and every fault kind. A failure prints its seed, the broken invariant and the last
 * events; `npx flotilla sim --seed S --runs 1` replays it.
 */
export function sweepCase(firstSeed: number, runs: number): void {
  const last = firstSeed + runs - 1;
  it(`seeds ${firstSeed}..${last} run clean`, () => {
    const started = performance.now();
    const s = runSweep({ firstSeed, runs, stopOnFailure: false });
    const t = s.totals;
    console.log(
      `sweep ${firstSeed}..${last}: ${s.runs} runs in ${((performance.now() - started) / 1000).toFixed(1)}s, ${t.leaders} leaders, ` +
        `${t.opsOk}/${t.ops} ops ok, ${t.crashes} crashes, ${t.partitions} partitions, ${t.pauses} pauses, ${t.confChanges} conf changes`,
    );
    expect(s.failures.map(formatFailure).join('\n\n')).toBe('');
    expect(s.runs).toBe(runs);
  });
}

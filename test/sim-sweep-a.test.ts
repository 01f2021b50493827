import { expect, it } from 'vitest';
import { formatFailure, runSweep } from '../src/sim/sweep.js';

// Together with sim-sweep-b.test.ts: 2000 consecutive seeds, every size 3..7 and every fault kind
// (split in two files so the two halves run in parallel). Any failure prints its seed, the
// broken invariant and the last events; reproduce it with `npx flotilla sim --seed S --runs 1`.
it('seeds 1..1000 run clean', () => {
  const started = performance.now();
  const s = runSweep({ firstSeed: 1, runs: 1000, stopOnFailure: false });
  const t = s.totals;
  console.log(
    `sweep 1..1000: ${s.runs} runs in ${((performance.now() - started) / 1000).toFixed(1)}s, ${t.leaders} leaders, ` +
      `${t.opsOk}/${t.ops} ops ok, ${t.crashes} crashes, ${t.partitions} partitions, ${t.pauses} pauses, ${t.confChanges} conf changes`,
  );
  expect(s.failures.map(formatFailure).join('\n\n')).toBe('');
  expect(s.runs).toBe(1000);
});

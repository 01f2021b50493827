/**
 * The parallel sweep (src/sim/parallel-sweep.ts) runs from the build, since its worker threads
 * load dist/sim/sweep-worker.js (`npm run build` first): the same seeds give the same summary
 * and the same failures as one thread running them in order.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type * as Parallel from '../src/sim/parallel-sweep.js';
import type * as Sweep from '../src/sim/sweep.js';

const ROOT = join(import.meta.dirname, '..');
const BUILT = existsSync(join(ROOT, 'dist/sim/sweep-worker.js'));
if (!BUILT) console.log('skipping the parallel sweep tests: dist/sim/sweep-worker.js is missing (npm run build)');

const load = async <T>(path: string): Promise<T> => (await import(pathToFileURL(join(ROOT, path)).href)) as T;

/** Lease races with clocks beyond the drift margin: stale reads at several seeds in 1..30 (4, 7, 11, 27). */
const BEYOND_MARGIN = { faults: ['clock'], nodes: 3, readOnly: 'lease', driver: 'core', clockBeyondMargin: true } as const;

describe.skipIf(!BUILT)('parallel sweep', () => {
  it('gives the summary and the failures one thread gives, failures in seed order', async () => {
    const { runParallelSweep } = await load<typeof Parallel>('dist/sim/parallel-sweep.js');
    const { runSweep, formatFailure } = await load<typeof Sweep>('dist/sim/sweep.js');
    const one = await runSweep({ ...BEYOND_MARGIN, firstSeed: 1, runs: 30, stopOnFailure: false });
    const seen: number[] = [];
    const two = await runParallelSweep({ sim: BEYOND_MARGIN, firstSeed: 1, runs: 30, jobs: 2, stopOnFailure: false, onResult: (r) => seen.push(r.seed) });
    expect(one.failures.length).toBeGreaterThan(1);
    expect(two.runs).toBe(30);
    expect(two.totals).toEqual(one.totals);
    expect(two.sizes).toEqual(one.sizes);
    expect(two.faultRuns).toEqual(one.faultRuns);
    expect(two.failures.map(formatFailure)).toEqual(one.failures.map(formatFailure));
    // Told of every run once.
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it('node driver: a seed runs the same in a worker thread, first of its batch or not', async () => {
    // A run started from a worker's message handler, not from a promise continuation, once
    // settled its first event before the members' continuations had run (a nextTick runs before
    // the microtasks then): batches of one seed (12 runs, 2 jobs) make every run the first.
    const { runParallelSweep } = await load<typeof Parallel>('dist/sim/parallel-sweep.js');
    const { runSweep } = await load<typeof Sweep>('dist/sim/sweep.js');
    const events = (rs: { seed: number; stats: { events: number }; history: readonly unknown[] }[]): string[] =>
      rs.sort((a, b) => a.seed - b.seed).map((r) => `${r.seed}: ${r.stats.events} events, ${r.history.length} ops`);
    const one: Parameters<typeof events>[0] = [];
    await runSweep({ driver: 'node', firstSeed: 40, runs: 12, onResult: (r) => one.push(r) });
    const two: Parameters<typeof events>[0] = [];
    await runParallelSweep({ sim: { driver: 'node' }, firstSeed: 40, runs: 12, jobs: 2, onResult: (r) => two.push(r) });
    expect(events(two)).toEqual(events(one));
  });

  it('stops handing out seeds at a failure', async () => {
    const { runParallelSweep } = await load<typeof Parallel>('dist/sim/parallel-sweep.js');
    const s = await runParallelSweep({ sim: BEYOND_MARGIN, firstSeed: 1, runs: 200, jobs: 2 });
    expect(s.failures.length).toBeGreaterThan(0);
    expect(s.runs).toBeLessThan(200);
    const seeds = s.failures.map((f) => f.seed);
    expect(seeds).toEqual([...seeds].sort((a, b) => a - b));
  });
});

/**
 * The simulator's chain mode: a sweep of seeds (each run: faults, then healing, the paper's
 * invariants after every event, convergence, the history checked for linearizability).
 * `flotilla sim --chain --seed S --runs 1` replays a failing seed.
 */
import { describe, expect, it } from 'vitest';
import { formatChainFailure, runChainSimulation } from '../src/sim/chain-sim.js';
import { runChainSimCommand } from '../src/cli/chain-sim.js';
import { eventLoopTurn } from './support/event-loop.js';

const SEEDS = 1000;

describe('chain simulator', () => {
  it('is a pure function of its seed', () => {
    const a = runChainSimulation({ seed: 42 });
    const b = runChainSimulation({ seed: 42 });
    expect(a.ok).toBe(true);
    expect(JSON.stringify(b.history)).toBe(JSON.stringify(a.history));
    expect(b.stats).toEqual(a.stats);
  });

  it('flotilla sim --chain: runs seeds, reports, refuses bad flags with exit code 2', () => {
    const out: string[] = [];
    expect(runChainSimCommand({ seed: 3, runs: 2, reads: 'craq', faults: 'crash,replay', compaction: 'on', verbose: true }, (l) => out.push(l))).toBe(0);
    expect(out[0]).toMatch(/^seed 3: ok .*reads=craq faults=crash,replay .*compact=.* \d+ compactions/);
    expect(out.at(-1)).toMatch(/^chain: 2 runs ok \(seeds 3\.\.4\), .* [1-9]\d* compactions/);
    const off: string[] = [];
    expect(runChainSimCommand({ seed: 3, runs: 1, compaction: 'off', verbose: true }, (l) => off.push(l))).toBe(0);
    expect(off[0]).not.toMatch(/compact=/);
    expect(off[0]).toMatch(/ 0 compactions/);
    for (const bad of [{ reads: 'head' }, { faults: 'crash,flood' }, { nodes: 9 }, { compaction: 'sometimes' }]) {
      const lines: string[] = [];
      expect(runChainSimCommand({ seed: 1, runs: 1, ...bad }, (l) => lines.push(l))).toBe(2);
      expect(lines[0]).toMatch(/^flotilla sim --chain: /);
    }
  });

  it(`holds the invariants over ${SEEDS} seeds (both read modes, every fault kind, compaction)`, async () => {
    const failures: string[] = [];
    const totals = { epochs: 0, snapshots: 0, crashes: 0, replays: 0, opsOk: 0, craq: 0, compacting: 0, compactionsDurable: 0, restartsFromCompaction: 0, crashesAroundCompaction: 0, snapshotsFromCompacted: 0, unaskedSnapshots: 0 };
    for (let seed = 1; seed <= SEEDS && failures.length < 3; seed++) {
      const r = runChainSimulation({ seed });
      await eventLoopTurn();
      if (!r.ok) failures.push(formatChainFailure(r));
      totals.epochs += r.stats.epochs;
      totals.snapshots += r.stats.snapshots;
      totals.crashes += r.stats.crashes;
      totals.replays += r.stats.replays;
      totals.opsOk += r.stats.opsOk;
      if (r.setting.includes('reads=craq')) totals.craq++;
      if (r.setting.includes(' compact=')) totals.compacting++;
      totals.compactionsDurable += r.stats.compactionsDurable;
      totals.restartsFromCompaction += r.stats.restartsFromCompaction;
      totals.crashesAroundCompaction += r.stats.crashesAroundCompaction;
      totals.snapshotsFromCompacted += r.stats.snapshotsFromCompacted;
      totals.unaskedSnapshots += r.stats.unaskedSnapshots;
    }
    expect(failures.join('\n\n')).toBe('');
    // The sweep exercises what it claims to (configuration changes, joins, crashes, replays, both read modes).
    expect(totals.epochs).toBeGreaterThan(SEEDS);
    expect(totals.snapshots).toBeGreaterThan(SEEDS / 4);
    expect(totals.crashes).toBeGreaterThan(SEEDS / 2);
    expect(totals.replays).toBeGreaterThan(SEEDS);
    expect(totals.opsOk).toBeGreaterThan(SEEDS * 50);
    expect(totals.craq).toBeGreaterThan(SEEDS / 3);
    // Compaction (most seeds): compacted disks, restarts from them (some crashing just before or
    // after a compaction became durable), catch-ups sent from a compacted state, and joiners
    // lagging behind a tail's retained log.
    expect(totals.compacting).toBeGreaterThan(SEEDS / 2);
    expect(totals.compactionsDurable).toBeGreaterThan(SEEDS * 10);
    expect(totals.restartsFromCompaction).toBeGreaterThan(SEEDS / 2);
    expect(totals.crashesAroundCompaction).toBeGreaterThan(SEEDS / 4);
    expect(totals.snapshotsFromCompacted).toBeGreaterThan(SEEDS / 5);
    expect(totals.unaskedSnapshots).toBeGreaterThan(SEEDS / 20);
  });
});

import { describe, expect, it } from 'vitest';
import { formatFailure, runSweep } from '../src/sim/sweep.js';
import type { Storage } from '../src/storage/storage.js';
import { LEASE_MUTANTS, MUTANTS } from './mutants.js';

/**
 * The simulator must catch real Raft bugs. Each broken core runs through a sweep with a fault
 * mix that churns leadership (new leaders crashed or isolated within a few message delays,
 * lossy links, partitions) until an invariant breaks. The seeds are fixed, so each result is
 * reproducible; the caps are generous compared to where each bug is found today.
 */
const CHURN = { faults: ['crash', 'partition', 'lossy'], nodes: 3, strikeChance: 0.7, faultPhaseMs: 10_000 } as const;
const CAP = 3000;

describe('the simulator catches deliberately broken cores', () => {
  for (const m of MUTANTS) {
    // With the node driver the broken core runs inside the server's shell and storage code.
    // The Figure 8 bug needs a rare interleaving there (not within 3000 seeds of this mix), so
    // it is hunted with the bare-core driver only.
    const drivers = m.name.startsWith('prior-term') ? (['core'] as const) : (['core', 'node'] as const);
    for (const driver of drivers) {
      it(`catches (${driver} driver): ${m.name}`, async () => {
        const s = await runSweep({ ...CHURN, driver, firstSeed: 1, runs: CAP, makeCore: m.makeCore, skipLinearizability: true });
        expect(s.failures.length, `${m.name} survived ${s.runs} seeds`).toBe(1);
        const f = s.failures[0]!;
        console.log(`${m.name} (${driver} driver): caught at seed ${f.seed} after ${s.runs} runs: ${f.failure!.invariant}: ${f.failure!.message}`);
        expect(formatFailure(f)).toContain(`FAILED seed ${f.seed}`);
      });
    }
  }

  it('a vote sent before it is durable is also caught by its consequence: two leaders in one term', async () => {
    // With the send-time durability check off, the bug shows itself the way it would in
    // production: a member crashes after voting, restarts from its WAL without the vote, votes
    // again (node driver: the real storage code).
    const m = MUTANTS.find((x) => x.name.startsWith('vote sent before'))!;
    const s = await runSweep({ ...CHURN, driver: 'node', firstSeed: 1, runs: CAP, makeCore: m.makeCore, checkDurability: false, skipLinearizability: true });
    expect(s.failures.length).toBe(1);
    const f = s.failures[0]!;
    console.log(`vote sent before it is durable (durability check off): caught at seed ${f.seed}: ${f.failure!.invariant}: ${f.failure!.message}`);
    expect(f.failure!.invariant).toBe('election safety');
  });

  it('catches (node driver, lease reads): a lease that never expires', async () => {
    // A deposed leader cut off by a partition keeps answering reads from its lease while a new
    // leader takes writes: stale reads, which only the linearizability checker sees.
    const m = LEASE_MUTANTS[0]!;
    const s = await runSweep({ faults: ['partition', 'lossy'], nodes: 3, strikeChance: 0.7, faultPhaseMs: 10_000, readOnly: 'lease', driver: 'node', firstSeed: 1, runs: 1000, makeCore: m.makeCore });
    expect(s.failures.length, `${m.name} survived ${s.runs} seeds`).toBe(1);
    const f = s.failures[0]!;
    console.log(`${m.name} (node driver): caught at seed ${f.seed} after ${s.runs} runs: ${f.failure!.invariant}: ${f.failure!.message.slice(0, 300)}`);
    expect(f.failure!.invariant).toBe('linearizability');
  });

  it('the correct core passes the same sweep prefix', async () => {
    const s = await runSweep({ ...CHURN, driver: 'core', firstSeed: 1, runs: 300 });
    expect(s.failures.map(formatFailure).join('\n')).toBe('');
  });
});

describe('the simulator catches deliberately broken storage (node driver)', () => {
  it('catches: a WAL that never waits for fdatasync', async () => {
    // The member acknowledges entries and votes that are still only in the page cache; a crash
    // loses them. Caught when the member recovers less than it had claimed durable.
    const noSync = (s: Storage): Storage => ({
      load: () => s.load(),
      save: (rd) => s.save(rd, false),
      saveSnapshot: (snap) => s.saveSnapshot(snap),
      close: () => s.close(),
    });
    const s = await runSweep({ ...CHURN, driver: 'node', firstSeed: 1, runs: 200, wrapStorage: noSync, skipLinearizability: true });
    expect(s.failures.length, `survived ${s.runs} seeds`).toBe(1);
    const f = s.failures[0]!;
    console.log(`no fdatasync: caught at seed ${f.seed}: ${f.failure!.invariant}: ${f.failure!.message}`);
    expect(f.failure!.invariant).toMatch(/^durable/);
  });
});

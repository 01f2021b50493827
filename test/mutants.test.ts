import { describe, expect, it } from 'vitest';
import { formatFailure, runSweep } from '../src/sim/sweep.js';
import { MUTANTS } from './mutants.js';

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
    it(`catches: ${m.name}`, () => {
      const s = runSweep({ ...CHURN, firstSeed: 1, runs: CAP, makeCore: m.makeCore, skipLinearizability: true });
      expect(s.failures.length, `${m.name} survived ${s.runs} seeds`).toBe(1);
      const f = s.failures[0]!;
      console.log(`${m.name}: caught at seed ${f.seed} after ${s.runs} runs: ${f.failure!.invariant}: ${f.failure!.message}`);
      expect(formatFailure(f)).toContain(`FAILED seed ${f.seed}`);
    });
  }

  it('a vote sent before it is durable is also caught by its consequence: two leaders in one term', () => {
    // With the send-time durability check off, the bug shows itself the way it would in
    // production: a member crashes after voting, restarts without the vote, votes again.
    const m = MUTANTS.find((x) => x.name.startsWith('vote sent before'))!;
    const s = runSweep({ ...CHURN, firstSeed: 1, runs: CAP, makeCore: m.makeCore, checkDurability: false, skipLinearizability: true });
    expect(s.failures.length).toBe(1);
    const f = s.failures[0]!;
    console.log(`vote sent before it is durable (durability check off): caught at seed ${f.seed}: ${f.failure!.invariant}: ${f.failure!.message}`);
    expect(f.failure!.invariant).toBe('election safety');
  });

  it('the correct core passes the same sweep prefix', () => {
    const s = runSweep({ ...CHURN, firstSeed: 1, runs: 300 });
    expect(s.failures.map(formatFailure).join('\n')).toBe('');
  });
});

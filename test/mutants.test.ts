import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatTranscript, runTranscript } from '../src/raft/testing/interaction.js';
import type { SimOptions } from '../src/sim/simulation.js';
import { formatFailure, runSweep } from '../src/sim/sweep.js';
import type { Storage } from '../src/storage/storage.js';
import { LEASE_MUTANTS, MUTANTS, TARGETED_MUTANTS } from './mutants.js';

/**
 * The simulator must catch real Raft bugs. Each broken core runs through a sweep with a fault
 * mix that churns leadership (new leaders crashed or isolated within a few message delays,
 * lossy links, partitions) until an invariant breaks. The seeds are fixed, so each result is
 * reproducible; the caps are generous compared to where each bug is found today.
 */
const CHURN = { faults: ['crash', 'partition', 'lossy'], nodes: 3, strikeChance: 0.7, faultPhaseMs: 10_000 } as const;
const CAP = 3000;
/**
 * Where each sweep starts: seed 1, except for the Figure 8 bug, which needs a rare interleaving
 * (about one seed in a few thousand of this mix). With the random streams before issue 15 it
 * was caught at seed 163 (none more in 1..2000); with the streams per purpose none of seeds
 * 1..3000 catches it and seed 3993 does, so its sweep starts at 3901. That makes the sweep
 * fragile (a change to the random streams moves the seed), so the Figure 8 transcript below
 * catches the same bug deterministically.
 */
const FIRST_SEED: Record<string, number> = { 'prior-term entry committed by counting replicas': 3901 };

describe('the simulator catches deliberately broken cores', () => {
  for (const m of MUTANTS) {
    // With the node driver the broken core runs inside the server's shell and storage code.
    // The Figure 8 bug needs a rare interleaving there (not within 3000 seeds of this mix), so
    // it is hunted with the bare-core driver only.
    const drivers = m.name.startsWith('prior-term') ? (['core'] as const) : (['core', 'node'] as const);
    for (const driver of drivers) {
      it(`catches (${driver} driver): ${m.name}`, async () => {
        const s = await runSweep({ ...CHURN, driver, firstSeed: FIRST_SEED[m.name] ?? 1, runs: CAP, makeCore: m.makeCore, skipLinearizability: true });
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

/**
 * The broken cores of issue 14, each under the workload built for it (fixed seeds, caps well
 * above where each is found today), and the transcripts of the core rules they break.
 */
describe('the simulator catches the targeted mutants', () => {
  type Sweep = Omit<SimOptions, 'seed' | 'makeCore'>;
  const LEASE_RACES: Sweep = { faults: ['clock'], nodes: 3, readOnly: 'lease', driver: 'core' };
  const cases: { mutant: string; sweep?: Sweep; cap?: number; transcript?: string }[] = [
    // Joint replaces under partitions of one half: an entry committed by the incoming half only
    // is lost when the outgoing majority elects a leader.
    { mutant: 'commits with only the incoming half', sweep: { faults: ['joint'], nodes: 4, driver: 'core' }, cap: 400, transcript: 'joint_replace.txt' },
    { mutant: 'commits with only the outgoing half', sweep: { faults: ['joint'], nodes: 4, driver: 'core' }, cap: 400, transcript: 'joint_replace.txt' },
    { mutant: 'counts votes with only the incoming half', sweep: { faults: ['joint', 'crash'], driver: 'core' }, cap: 400, transcript: 'joint_replace.txt' },
    // A correct leader's probing always lands on the divergence, so no simulated run sends
    // the append this rule is for (see bench/README.md); the transcript crafts it.
    { mutant: 'follower commits past the last entry verified', transcript: 'stale_tail_commit.txt' },
    { mutant: 'leader never steps down', sweep: { faults: ['partition'], nodes: 3, driver: 'node' }, cap: 100, transcript: 'check_quorum.txt' },
    { mutant: 'lease read without the drift margin', sweep: LEASE_RACES, cap: 1000 },
    { mutant: 'lease read without the boot window', sweep: LEASE_RACES, cap: 1000 },
  ];
  for (const c of cases) {
    const m = TARGETED_MUTANTS.find((x) => x.name.startsWith(c.mutant));
    it(`knows the mutant: ${c.mutant}`, () => expect(m).toBeDefined());
    if (!m) continue;
    if (c.sweep) {
      it(`catches (${c.sweep.driver} driver, ${c.sweep.faults!.join(',')}): ${m.name}`, async () => {
        const s = await runSweep({ ...c.sweep, firstSeed: 1, runs: c.cap!, makeCore: m.makeCore });
        expect(s.failures.length, `${m.name} survived ${s.runs} seeds`).toBe(1);
        const f = s.failures[0]!;
        console.log(`${m.name}: caught at seed ${f.seed}: ${f.failure!.invariant}: ${f.failure!.message.slice(0, 300)}`);
      });
    }
    if (c.transcript) {
      it(`the transcript ${c.transcript} catches: ${m.name}`, () => {
        const text = readFileSync(join(import.meta.dirname, '../src/raft/testdata', c.transcript!), 'utf8');
        expect(formatTranscript(runTranscript(text).actual)).toBe(text);
        expect(formatTranscript(runTranscript(text, m.makeCore).actual)).not.toBe(text);
      });
    }
  }

  it('every targeted mutant has a case', () => {
    for (const m of TARGETED_MUTANTS) expect(cases.some((c) => m.name.startsWith(c.mutant)), m.name).toBe(true);
  });

  it('with lease reads and clocks beyond the drift margin, the sweep finds stale reads (the correct core)', async () => {
    const s = await runSweep({ ...LEASE_RACES, clockBeyondMargin: true, firstSeed: 1, runs: 100 });
    expect(s.failures.length, `survived ${s.runs} seeds`).toBe(1);
    const f = s.failures[0]!;
    console.log(`clocks beyond the margin: stale read at seed ${f.seed}: ${f.failure!.message.slice(0, 300)}`);
    expect(f.failure!.invariant).toBe('linearizability');
  });

  it('within the margin the correct core passes the same lease races', async () => {
    const s = await runSweep({ ...LEASE_RACES, firstSeed: 1, runs: 80 });
    expect(s.failures.map(formatFailure).join('\n')).toBe('');
  });
});

/**
 * Where two members applied different entries at the same index (state machine safety, §5.4.3),
 * from a transcript's output: the CommittedEntries of each member's Readys.
 */
function appliedConflicts(out: readonly string[]): string[] {
  const applied = new Map<number, { node: string; entry: string }>();
  const conflicts: string[] = [];
  let node = '';
  let inCommitted = false;
  for (const l of out) {
    const ready = /^> (\d+) handling Ready$/.exec(l);
    if (ready) node = ready[1]!;
    const entry = /^ {4}(\d+)\/(\d+) (Entry.*)$/.exec(l);
    if (inCommitted && entry) {
      const index = Number(entry[2]);
      const e = `${entry[1]}/${entry[2]} ${entry[3]}`;
      const first = applied.get(index);
      if (!first) applied.set(index, { node, entry: e });
      else if (first.entry !== e) conflicts.push(`index ${index}: ${first.node} applied ${first.entry}, ${node} applied ${e}`);
      continue;
    }
    inCommitted = l === '    CommittedEntries:';
  }
  return conflicts;
}

describe("the Raft paper's Figure 8 (src/raft/testdata/figure8_paper.txt)", () => {
  const text = readFileSync(join(import.meta.dirname, '../src/raft/testdata/figure8_paper.txt'), 'utf8');
  const run = (makeCore?: (typeof MUTANTS)[number]['makeCore']) => runTranscript(text, makeCore).actual.flatMap((b) => b.expected);

  it('the correct core: every member applies the same entry at each index', () => {
    expect(appliedConflicts(run())).toEqual([]);
  });

  it('a leader that commits a prior-term entry by counting replicas: member 1 applies "xx" at index 2, every other member 5\'s entry', () => {
    // Deterministic, whatever the simulator's seeds do: the sweep above needs a rare interleaving.
    const m = MUTANTS.find((x) => x.name.startsWith('prior-term'))!;
    const conflicts = appliedConflicts(run(m.makeCore));
    expect(conflicts).toEqual([5, 2, 3, 4].map((n) => `index 2: 1 applied 1/2 EntryNormal "xx", ${n} applied 2/2 EntryNormal ""`));
  });
});

describe('the transcripts catch broken cores', () => {
  it('each transcript passes with the correct core, and the core-rule mutants each break at least one', () => {
    const dir = join(import.meta.dirname, '../src/raft/testdata');
    const texts = readdirSync(dir)
      .filter((f) => f.endsWith('.txt'))
      .map((f) => readFileSync(join(dir, f), 'utf8'));
    for (const m of [...TARGETED_MUTANTS.filter((x) => !x.name.startsWith('lease')), MUTANTS.find((x) => x.name.startsWith('prior-term'))!]) {
      expect(
        texts.some((t) => formatTranscript(runTranscript(t, m.makeCore).actual) !== t),
        m.name,
      ).toBe(true);
    }
  });
});

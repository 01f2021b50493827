import { describe, expect, it } from 'vitest';
import { BTree, binKey, MemoryBackend, type Batch } from '../src/kv/backend.js';
import { metaKey } from '../src/kv/mvcc.js';
import { runSimulation, type SimOptions } from '../src/sim/simulation.js';
import { formatFailure, runSweep } from '../src/sim/sweep.js';
import { SWEEP_TIMEOUT_MS, sweepCase } from './sweep-case.js';

/**
 * The simulator on the real store (`store: 'real'`, src/sim/store.ts): node-driver members
 * apply the log with KvStateMachine on a MemoryBackend that crashes as LMDB does (what the last
 * backend commit held survives, the overlay is lost), and restart from it replaying only the
 * WAL after the applied index that commit recorded. A slice of the default sweep runs so
 * (the node driver's seeds 1151..1200; sim-sweep-b.test.ts stops at 1150), and backends that break the applied-index contract
 * — the index a batch late, or never, or the data without it — must be caught.
 */
sweepCase(1151, 50, 'node', 'real');

it('is deterministic on the real store: the same seed gives the same run', async () => {
  // Seed 1203: compaction and pauses, a lagging member sent the leader's whole image; the
  // snapshot reaches its core while the Ready with its last entries is being persisted (what the
  // state checker once mistook for a skipped entry: StateChecker.checkSkipped).
  const a = await runSimulation({ seed: 1203, store: 'real' });
  const b = await runSimulation({ seed: 1203, store: 'real' });
  expect(a.ok).toBe(true);
  expect(a.setting).toContain('store=real');
  expect(a.stats.snapshotsInstalled).toBeGreaterThan(0);
  expect(b.stats).toEqual(a.stats);
  expect(b.history).toEqual(a.history);
});

type Ops = BTree<string, Uint8Array | null>;

/**
 * A MemoryBackend whose running instance is correct but whose commits make durable a changed
 * batch: what a restarted member finds is that image (the pending writes lost, as always).
 */
class MutantBackend extends MemoryBackend {
  constructor(
    private durableImage: BTree<string, Uint8Array>,
    batchOpsMax: number,
    private readonly mutate: (ops: Ops, self: MutantBackend) => void,
  ) {
    super({ durable: true, batchOpsMax, committed: durableImage.clone() });
  }

  protected override write(batch: Batch): void {
    super.write(batch);
    const ops = batch.ops.clone();
    this.mutate(ops, this);
    const next = batch.cleared ? new BTree<string, Uint8Array>() : this.durableImage.clone();
    ops.forEach((v, k) => void (v === null ? next.delete(k) : next.set(k, v)));
    this.durableImage = next;
  }

  /** Each incarnation's backend: a mutant over what the last one made durable. */
  static reopenAs(mutate: (ops: Ops, self: MutantBackend) => void): NonNullable<SimOptions['reopenBackend']> {
    return (crashed, batchOpsMax) => {
      if (crashed instanceof MutantBackend) return new MutantBackend(crashed.durableImage, batchOpsMax, mutate);
      // The member's first backend (empty).
      crashed.crash();
      const view = crashed.readView();
      const image = new BTree<string, Uint8Array>();
      for (const [k, v] of view.entries()) image.set(binKey(k), v);
      view.close();
      return new MutantBackend(image, batchOpsMax, mutate);
    };
  }
}

const APPLIED = binKey(metaKey('applied'));

const MUTANT_BACKENDS: { name: string; mutate: (ops: Ops, self: MutantBackend) => void }[] = [
  {
    // As if the index were written in a transaction of its own after the data's: a crash
    // between them leaves the last batch's entries applied but not recorded, so they are
    // applied again at restart.
    name: 'the applied index committed one batch late',
    mutate: (() => {
      const held = new WeakMap<MutantBackend, Uint8Array>();
      return (ops: Ops, self: MutantBackend) => {
        const now = ops.get(APPLIED);
        const late = held.get(self);
        if (now) held.set(self, now);
        if (late) ops.set(APPLIED, late);
        else ops.delete(APPLIED);
      };
    })(),
  },
  {
    name: 'the applied index never committed',
    mutate: (ops) => void ops.delete(APPLIED),
  },
  {
    // The index without the data: a restarted member skips entries whose effects it lost.
    name: 'the applied index committed without the key-space writes of its batch',
    mutate: (ops) => {
      // Revisions ('r') and the key index ('k'): the writes of the key space.
      for (const k of [...ops.keys()]) if (k[0] === 'r' || k[0] === 'k') ops.delete(k);
    },
  },
];

describe('the simulator catches a real store that breaks the applied-index contract', () => {
  // Crashes with a batch limit of a few entries, so that restarts fall between commits.
  const CRASHES = { faults: ['crash'], nodes: 3, strikeChance: 0.3, store: 'real', driver: 'node', skipLinearizability: true } as const;
  for (const m of MUTANT_BACKENDS) {
    it(
      `catches: ${m.name}`,
      async () => {
        const s = await runSweep({ ...CRASHES, firstSeed: 1, runs: 40, reopenBackend: MutantBackend.reopenAs(m.mutate) });
        expect(s.failures.length, `survived ${s.runs} seeds`).toBe(1);
        const f = s.failures[0]!;
        console.log(`${m.name}: caught at seed ${f.seed}: ${f.failure!.invariant}: ${f.failure!.message.slice(0, 300)}`);
        expect(formatFailure(f)).toContain('--store real');
      },
      SWEEP_TIMEOUT_MS,
    );
  }

  it(
    'the correct backend passes the same seeds, and reopening through the hook changes nothing',
    async () => {
      const s = await runSweep({ ...CRASHES, firstSeed: 1, runs: 10, stopOnFailure: false, reopenBackend: MutantBackend.reopenAs(() => {}) });
      expect(s.failures.map(formatFailure).join('\n')).toBe('');
      expect(s.totals.crashes).toBeGreaterThan(10);
    },
    SWEEP_TIMEOUT_MS,
  );
});
